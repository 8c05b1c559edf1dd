"""The systemd units run every job of the document at the document's schedule."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from undecat.bootstrap import HOST_JOBS

UNITS = Path(__file__).resolve().parents[1] / "deploy" / "systemd"

# Transcribed from the source document's job tables (all times UTC).
SCHEDULE = {
    ("scraper", "availability_poll"): "*-*-* *:00:00 UTC",
    ("scraper", "sync_to_production"): "*-*-* *:10:00 UTC",
    # Ours (the document gives no time): daily, outside the :00 poll and :10 sync.
    ("scraper", "stores_refresh"): "*-*-* 02:50:00 UTC",
    ("scraper", "availability_retention"): "*-*-* 03:30:00 UTC",
    ("apify", "apify_zara"): "Sun *-*-* 02:00:00 UTC",
    ("apify", "apify_bershka"): "Sun *-*-* 03:00:00 UTC",
    ("apify", "apify_pullandbear"): "Sun *-*-* 04:00:00 UTC",
    ("apify", "apify_stradivarius"): "Sun *-*-* 05:00:00 UTC",
    ("apify", "apify_massimodutti"): "Sun *-*-* 06:00:00 UTC",
    ("apify", "apify_oysho"): "Sun *-*-* 07:00:00 UTC",
    ("photo_downloader", "download_pending"): "*-*-* *:00/15:00 UTC",
    ("photo_downloader", "retry_failed"): "*-*-* *:30:00 UTC",
    ("photo_downloader", "cleanup_temp"): "*-*-* 05:00:00 UTC",
    ("collage", "process_new"): "*-*-* *:00/15:00 UTC",
    ("collage", "retry_failed"): "*-*-* *:30:00 UTC",
    ("collage", "cleanup_temp"): "*-*-* 04:00:00 UTC",
    ("collage", "retention"): "*-*-* 03:20:00 UTC",  # not in the document: issue 17
    ("ximilar_sync", "ximilar_sync"): "Sun *-*-* 10:00:00 UTC",
    ("ximilar_sync", "ximilar_retry"): "*-*-* 12:00:00 UTC",
}


def _read(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case
    parser.read(path)
    return parser


def _unit(host: str) -> str:
    return "undecat-" + _name(host)


def _name(host: str) -> str:
    """The host's one spelling outside Python: its folder, units, user and example .env."""
    return host.replace("_", "-")


@pytest.mark.parametrize(("host", "job"), sorted(SCHEDULE))
def test_each_job_has_a_timer_at_the_documents_time(host: str, job: str) -> None:
    """Every (host, job) has a timer firing at the document's schedule into its host's unit."""
    timer = _read(UNITS / f"{_unit(host)}-{job.replace('_', '-')}.timer")
    assert timer["Timer"]["OnCalendar"] == SCHEDULE[host, job]
    assert timer["Timer"]["Unit"] == f"{_unit(host)}@{job}.service"
    assert timer["Timer"]["Persistent"] == "true"


@pytest.mark.parametrize("host", sorted(HOST_JOBS))
def test_each_host_unit_runs_its_runner(host: str) -> None:
    """The service template runs the installed undecat-<host> entry point with the host's .env."""
    service = _read(UNITS / f"{_unit(host)}@.service")["Service"]
    assert service["ExecStart"] == f"/opt/unde/venv/bin/{_unit(host)} %i"
    assert service["EnvironmentFile"] == f"/opt/unde/{_name(host)}/.env"
    assert service["User"] == service["Group"] == _unit(host)
    assert service["Type"] == "oneshot"
    assert service["SyslogIdentifier"] == f"{_unit(host)}-%i"
    assert (Path(__file__).resolve().parents[1] / "runners" / f"{host}.py").exists()
    assert (UNITS.parents[1] / "examples" / "env" / f"{_name(host)}.env").exists()


def test_the_schedule_covers_every_job() -> None:
    """No job of HOST_JOBS is left without a timer."""
    assert set(SCHEDULE) == {(host, job) for host, jobs in HOST_JOBS.items() for job in jobs}


def test_calendar_expressions_parse() -> None:
    """Every OnCalendar expression parses (where systemd-analyze is installed)."""
    analyze = shutil.which("systemd-analyze")
    expressions = sorted(set(SCHEDULE.values()))
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run(
        [analyze, "calendar", *expressions], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


# How often each schedule fires: a job's TimeoutStartSec must end a run before the next.
INTERVAL = {
    "*-*-* *:00/15:00 UTC": timedelta(minutes=15),
    "*-*-* *:00:00 UTC": timedelta(hours=1),
    "*-*-* *:10:00 UTC": timedelta(hours=1),
    "*-*-* *:30:00 UTC": timedelta(hours=1),
    "*-*-* 04:00:00 UTC": timedelta(days=1),
    "*-*-* 05:00:00 UTC": timedelta(days=1),
    "*-*-* 12:00:00 UTC": timedelta(days=1),
}
WEEK = timedelta(days=7)

# issue 16 item 8: what every service must set (value, or None for "any value").
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectProc": "invisible",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "SystemCallFilter": "@system-service",
    "LockPersonality": "yes",
    "RestrictSUIDSGID": "yes",
    "CapabilityBoundingSet": "",
    "UMask": "0077",
    "MemoryMax": None,
    "TasksMax": None,
}


def _span(text: str) -> timedelta:
    """A systemd time span such as ``14min``, ``1h`` or ``4h 30min``."""
    units = {"min": 60, "h": 3600, "s": 1, "d": 86400}
    total = 0
    for number, unit in re.findall(r"(\d+)\s*(min|h|s|d)", text):
        total += int(number) * units[unit]
    assert total, f"not a time span: {text!r}"
    return timedelta(seconds=total)


def _services() -> list[Path]:
    return sorted(UNITS.glob("undecat-*@.service"))


def _multi(path: Path) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit's [Service] section, repeated keys kept in order."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.parametrize("path", _services(), ids=lambda p: p.name)
def test_every_service_sets_the_hardening_options(path: Path) -> None:
    """Each service template sets every option issue 16 lists, with the listed value."""
    values = _multi(path)
    for key, wanted in HARDENING.items():
        assert key in values, f"{path.name} does not set {key}="
        if wanted is not None:
            assert wanted in values[key], f"{path.name}: {key}={values[key]}, want {wanted!r}"


@pytest.mark.parametrize("host", sorted(HOST_JOBS))
def test_secrets_are_outside_the_writable_paths(host: str) -> None:
    """The .env is read by systemd and lies outside ReadWritePaths, the data folder only."""
    service = _multi(UNITS / f"{_unit(host)}@.service")
    (env_file,) = service["EnvironmentFile"]
    (writable,) = service["ReadWritePaths"]
    assert writable.split() == [f"/opt/unde/{_name(host)}/data"]
    assert not Path(env_file).is_relative_to(writable)
    assert service["WorkingDirectory"] == [f"/opt/unde/{_name(host)}/data"]


def test_one_system_user_per_host() -> None:
    """No two hosts share a system user, so co-located hosts cannot read each other's .env."""
    users = [_multi(UNITS / f"{_unit(h)}@.service")["User"][0] for h in sorted(HOST_JOBS)]
    assert len(set(users)) == len(users)
    assert "undecat" not in users


@pytest.mark.parametrize(("host", "job"), sorted(SCHEDULE))
def test_each_job_has_a_start_timeout_sized_to_its_schedule(host: str, job: str) -> None:
    """A job's TimeoutStartSec (its drop-in) ends a run before the timer fires again."""
    dropin = UNITS / f"{_unit(host)}@{job}.service.d" / "timeout.conf"
    timeout = _span(_read(dropin)["Service"]["TimeoutStartSec"])
    interval = INTERVAL.get(SCHEDULE[host, job], WEEK)
    assert timeout < interval
    default = _span(_read(UNITS / f"{_unit(host)}@.service")["Service"]["TimeoutStartSec"])
    assert default <= timedelta(minutes=15)


@pytest.mark.parametrize("host", sorted(HOST_JOBS))
def test_systemd_rates_every_unit_at_most_3(host: str, tmp_path: Path) -> None:
    """systemd-analyze security --offline rates each job's unit 3.0 or better."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (the option test above still runs)")
    probe = subprocess.run(
        [analyze, "security", "--help"], capture_output=True, text=True, check=False
    )
    if "--offline" not in probe.stdout:
        pytest.skip("this systemd-analyze has no --offline")
    template = (UNITS / f"{_unit(host)}@.service").read_text()
    units = []
    for job in HOST_JOBS[host]:
        unit = tmp_path / f"{_unit(host)}@{job}.service"
        unit.write_text(template)
        units.append(str(unit))
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--threshold=30", "--no-pager", *units],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    overall = r"Overall exposure level for \S+: ([\d.]+)"
    scores = [float(s) for s in re.findall(overall, result.stdout)]
    assert len(scores) == len(units)
    assert max(scores) <= 3.0, result.stdout[-500:]

"""The Apify task source driven through the real apify-client against the local fake API."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from tests.fake_apify import TOKEN, FakeApify, RunPlan
from undecat.adapters.apify import ApifyCatalogSource, ApifyRun
from undecat.errors import ConfigError, RemoteServiceError
from undecat.redact import Secret

TASK = "z1psVOTyIKFdU5N9n"


def source(api: FakeApify, *, token: str = TOKEN, retries: int = 3) -> ApifyCatalogSource:
    return ApifyCatalogSource(
        Secret(token),
        tasks={"zara": TASK, "oysho": "someone/oysho-task"},
        api_url=api.url,
        wait=timedelta(seconds=30),
        max_retries=retries,
        min_delay_between_retries=timedelta(milliseconds=1),
        page_size=1000,
    )


def decoded(run: ApifyRun) -> list[object]:
    """The run's items, each decoded from the JSON text the source yields it as."""
    return [msgspec.json.decode(item) for item in run.items()]


def test_items_stream_over_several_pages(fake_apify: FakeApify) -> None:
    """A finished run's 2,500 items arrive in order over pages of 1,000, with the bearer token."""
    items = [{"id": n} for n in range(2500)]
    fake_apify.plan(TASK, RunPlan(items=items))
    run = source(fake_apify).start("zara")
    assert run.status() == "SUCCEEDED"
    assert run.run_id == "run00001"
    assert decoded(run) == items
    pages = [(q["offset"][0], q["limit"][0]) for m, p, q, _ in fake_apify.requests if "/items" in p]
    assert pages[:3] == [("0", "1000"), ("1000", "1000"), ("2000", "1000")]
    assert fake_apify.count("POST", f"/v2/actor-tasks/{TASK}/runs") == 1


def test_a_page_is_split_into_items_without_decoding_them(fake_apify: FakeApify) -> None:
    """Each item is its own JSON text, as sent; an empty page ends the reading."""
    fake_apify.plan(TASK, RunPlan(items=[{"id": 1, "name": "Ж"}, {"id": 2}]))
    run = source(fake_apify).start("zara")
    raws = list(run.items())
    assert [bytes(r) for r in raws] == [b'{"id": 1, "name": "\xd0\x96"}', b'{"id": 2}']
    pages = [q["offset"][0] for m, p, q, _ in fake_apify.requests if "/items" in p]
    assert pages == ["0", "2"]


def test_a_page_that_is_one_object_is_one_item(fake_apify: FakeApify) -> None:
    """As apify-client's list_items takes it: an object instead of an array is one item."""
    fake_apify.plan(TASK, RunPlan(items=[]))
    fake_apify.answer_next("/items", b' {"id": 7, "name": "x"}')
    assert decoded(source(fake_apify).start("zara")) == [{"id": 7, "name": "x"}]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'[{"id": 1}, {"id": ', "not JSON"),
        (b"<html>blocked</html>", "not JSON"),
        (b'"just text"', "JSON array of items"),
        (b'{"id": 1', "not JSON"),
    ],
)
def test_a_page_that_is_not_json_is_an_outage_after_the_items_before_it(
    fake_apify: FakeApify, body: bytes, reason: str
) -> None:
    """The pages before it are yielded; the broken one is a RemoteServiceError saying why."""
    fake_apify.plan(TASK, RunPlan(items=[{"id": n} for n in range(1500)]))
    run = source(fake_apify).start("zara")
    items = run.items()
    first = [next(items) for _ in range(1000)]
    assert msgspec.json.decode(first[-1]) == {"id": 999}
    fake_apify.answer_next("/items", body)
    with pytest.raises(RemoteServiceError, match=f"cannot read.*{reason}"):
        next(items)


def test_task_ids_with_a_user_name_are_addressed_with_a_tilde(fake_apify: FakeApify) -> None:
    """A task id of the form user/name reaches the API as user~name."""
    fake_apify.plan("someone/oysho-task", RunPlan(items=[{"id": 1}]))
    assert decoded(source(fake_apify).start("oysho")) == [{"id": 1}]
    assert fake_apify.count("POST", "/v2/actor-tasks/someone~oysho-task/runs") == 1


def test_server_errors_are_retried_by_the_client(fake_apify: FakeApify) -> None:
    """A 500 on starting, polling or reading a page is retried, and the run completes."""
    items = [{"id": n} for n in range(1500)]
    fake_apify.plan(TASK, RunPlan(items=items))
    fake_apify.fail_next("POST", "/runs")
    fake_apify.fail_next("GET", "/actor-runs/")
    fake_apify.fail_next("GET", "/items", times=2)
    run = source(fake_apify).start("zara")
    assert decoded(run) == items
    assert fake_apify.count("POST", "/runs") == 2  # the failed start was repeated once


def test_persistent_server_errors_are_an_outage(fake_apify: FakeApify) -> None:
    """When every retry fails, the run is an outage naming the status, not a crash."""
    fake_apify.plan(TASK, RunPlan(items=[]))
    fake_apify.fail_next("POST", "/runs", times=10)
    with pytest.raises(RemoteServiceError, match="answered 500 after 3 attempt"):
        source(fake_apify, retries=2).start("zara")


@pytest.mark.parametrize("final", ["FAILED", "TIMED-OUT", "ABORTED"])
def test_unsuccessful_runs_report_their_status_and_keep_items(
    fake_apify: FakeApify, final: str
) -> None:
    """A run ending FAILED, TIMED-OUT or ABORTED does not raise: its status and items come back."""
    fake_apify.plan(TASK, RunPlan(items=[{"id": 1}, {"id": 2}], final_status=final))
    run = source(fake_apify).start("zara")
    assert run.status() == final
    assert decoded(run) == [{"id": 1}, {"id": 2}]
    assert fake_apify.count("POST", "/abort") == 0  # a finished run is not aborted


def test_invalid_token_is_a_clear_outage_without_the_token(fake_apify: FakeApify) -> None:
    """A 401 names APIFY_TOKEN and is not retried; the token appears in no message or repr."""
    fake_apify.plan(TASK, RunPlan(items=[{"id": 1}]))
    bad = "apify_api_WRONG_token_value"
    wrong = source(fake_apify, token=bad)
    with pytest.raises(RemoteServiceError, match=r"refused the token.*APIFY_TOKEN") as caught:
        wrong.start("zara")
    assert bad not in str(caught.value)
    assert bad not in repr(wrong)
    assert fake_apify.count("POST", "/runs") == 1
    assert fake_apify.runs == {}


def test_unknown_task_and_missing_task_id_are_config_errors(fake_apify: FakeApify) -> None:
    """A task Apify does not know (404), or a brand without a task id, names the variable."""
    with pytest.raises(ConfigError, match="APIFY_TASK_ZARA"):
        source(fake_apify).start("zara")  # no plan: the fake answers 404
    with pytest.raises(ConfigError, match="set APIFY_TASK_BERSHKA"):
        source(fake_apify).start("bershka")


def test_unreachable_api_is_an_outage() -> None:
    """Nothing listening at APIFY_API_URL is an outage that names the (redacted) URL."""
    api = FakeApify()
    url = api.url
    api.stop()  # the port is closed again: connections are refused
    unreachable = ApifyCatalogSource(
        Secret(TOKEN),
        tasks={"zara": TASK},
        api_url=url,
        max_retries=1,
        min_delay_between_retries=timedelta(milliseconds=1),
    )
    with pytest.raises(RemoteServiceError, match=r"cannot reach Apify at http://127\.0\.0\.1"):
        unreachable.start("zara")

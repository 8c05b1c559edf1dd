"""Adapters: the only modules that import I/O libraries.

psycopg, boto3, urllib3, apify_client and Pillow are imported here and nowhere else.
"""

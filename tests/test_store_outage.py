"""When PostgreSQL goes away: the API answers 503 JSON (never a 500), /readyz says so,
and the process keeps serving."""

from __future__ import annotations

from backend.app import Config, build_app
from tests.pg_support import drop_database, pg_admin_url, pg_url  # noqa: F401


async def test_a_database_that_goes_away_is_a_503_and_not_ready(aiohttp_client, pg_url, pg_admin_url):  # noqa: F811
    client = await aiohttp_client(build_app(Config(simulate=False, database=pg_url)))
    assert (await client.post("/api/sessions", json={"title": "before"})).status == 201
    await drop_database(pg_url, pg_admin_url)  # every connection is cut
    for method, path, body in (("POST", "/api/sessions", {"title": "after"}), ("GET", "/api/sessions", None)):
        resp = await client.request(method, path, json=body)
        assert resp.status == 503, await resp.text()
        assert (await resp.json())["error"] == "unavailable" and resp.headers["Retry-After"]

    resp = await client.get("/readyz")  # it asks the database now, not a flag set later
    assert resp.status == 503 and (await resp.json())["checks"]["store"] is False
    assert (await client.get("/healthz")).status == 200


async def test_an_unparseable_content_type_is_a_415_not_a_500(aiohttp_client):
    client = await aiohttp_client(build_app(Config(simulate=False)))
    for value in (";a*", "\t%; a*", "* \t;a\t\t*"):
        resp = await client.post("/api/sessions", data=b'{"title": "x"}', headers={"Content-Type": value})
        assert resp.status == 415, value

import httpx, pytest
from tests.stores import on_every_store
@on_every_store
def test_x(app_server_factory):
    s = app_server_factory()
    assert httpx.get(s.url + "/healthz").status_code == 200
@on_every_store
def test_y(app_server_factory):
    s = app_server_factory()
    assert httpx.get(s.url + "/healthz").status_code == 200

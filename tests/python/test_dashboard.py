"""The web dashboard in a real browser: Debian's Chromium, headless, driven by Playwright (the system browser,
never a downloaded one). Each test logs in as an operator would, works the pages, and checks the result against
the broker itself through real MQTT clients (paho-mqtt). Any JavaScript console error or uncaught exception
fails the test. Screenshots of every page at 1280x800 go to ``$RACTMQ_TEST_OUTPUT/dashboard`` (default
``target/test-output/dashboard``)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from conftest import REPO_ROOT
from mqtt_support import PahoClient, mqtt

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = Path(os.environ.get("RACTMQ_TEST_OUTPUT", REPO_ROOT / "target" / "test-output")) / "dashboard"
USER, PASSWORD = "operator", "s3cret-dashboard"
WAIT_MS = 10_000
PAGES = ["overview", "clients", "topics", "cluster", "supervision", "security", "bridges", "rules", "live"]

# The flags a sandboxed, offline machine needs: no background connections to Google's services, no GPU.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chromium():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium not found: apt-get install chromium chromium-driver (scripts/test-all.sh does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def node(broker_factory):
    """A node with API users (so the dashboard asks for a login), chaos on, and a WebSocket listener. Session
    actors stay awake (no hibernation) so that the supervision tree shows them."""
    b = broker_factory("--api-user", f"{USER}:{PASSWORD}", "--api-chaos", "--ws-listen", f"127.0.0.1:{_free_port()}",
                       "--hibernate-after-ms", "0")
    b.api = f"http://{b.api_addr()}"
    return b


@pytest.fixture
def page(chromium, request):
    """A 1280x800 page; the test fails on any console error or uncaught exception in it."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
    pg.problems = problems
    yield pg
    context.close()
    assert not problems, "JavaScript errors in the dashboard:\n" + "\n".join(problems)


def log_in(page: Page, node, path: str = "/") -> None:
    page.goto(node.api + path)
    page.fill("#login-username", USER)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#shell")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#node-name")).to_be_visible(timeout=WAIT_MS)


def go(page: Page, name: str) -> None:
    page.click(f'#nav a[data-page="{name}"]')
    expect(page.locator("#view")).to_have_attribute("data-page", name, timeout=WAIT_MS)


def confirm(page: Page) -> None:
    page.click('dialog[open] [data-confirm="yes"]')
    expect(page.locator("dialog[open]")).to_have_count(0, timeout=WAIT_MS)


def api_get(node, path: str):
    """The REST API as a script would call it, with basic credentials."""
    req = urllib.request.Request(node.api + "/api/v1" + path)
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def paho(node, client_id: str, protocol: int = mqtt.MQTTv5) -> PahoClient:
    return PahoClient(node.host, node.port, client_id=client_id, protocol=protocol, name=client_id)


def test_the_dashboard_is_served_at_the_root_of_the_api_listener(node):
    with urllib.request.urlopen(node.api + "/", timeout=10) as r:
        html = r.read().decode()
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        etag = r.headers["ETag"]
    assert '<script type="module" src="/assets/js/app.js">' in html
    with urllib.request.urlopen(node.api + "/assets/js/app.js", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/javascript")
    # Each view also has a path of its own, for links and bookmarks without the '#'.
    with urllib.request.urlopen(node.api + "/clients", timeout=10) as r:
        assert r.read().decode() == html
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(node.api + "/no-such-page", timeout=10)
    assert missing.value.code == 404
    # A browser holding the page revalidates it and gets 304, not the file again.
    again = urllib.request.Request(node.api + "/", headers={"If-None-Match": etag})
    with pytest.raises(urllib.error.HTTPError) as not_modified:
        urllib.request.urlopen(again, timeout=10)
    assert not_modified.value.code == 304
    # The data is not public: the API still asks for credentials.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(node.api + "/api/v1/clients", timeout=10)
    assert refused.value.code == 401


def test_a_wrong_password_is_refused_on_the_login_page(node, page):
    page.goto(node.api + "/")
    page.fill("#login-username", USER)
    page.fill("#login-password", "not-the-password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_contain_text("login failed", timeout=WAIT_MS)
    expect(page.locator("#shell")).to_be_hidden()
    # The browser reports the refused request itself; nothing else may go wrong.
    refused = "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    assert page.problems == [f"console.error: {refused}"], page.problems
    page.problems.clear()
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#shell")).to_be_visible(timeout=WAIT_MS)


def test_log_in_see_a_connected_client_and_kick_it(node, page):
    device = paho(node, "dash-device-7")
    device.connect_ok()
    log_in(page, node, "/clients")
    expect(page.locator("#view")).to_have_attribute("data-page", "clients", timeout=WAIT_MS)
    row = page.locator('#clients-table tr[data-key="dash-device-7"]')
    expect(row).to_be_visible(timeout=WAIT_MS)
    expect(row).to_contain_text("connected")
    expect(row).to_contain_text("5.0")

    # Search by client id narrows the list to it.
    other = paho(node, "another-client")
    other.connect_ok()
    expect(page.locator('#clients-table tr[data-key="another-client"]')).to_be_visible(timeout=WAIT_MS)
    page.fill("#client-search", "device-7")
    expect(page.locator('#clients-table tr[data-key="another-client"]')).to_have_count(0, timeout=WAIT_MS)
    expect(row).to_be_visible()

    # Details, then kick: the client is told 0x98 (administrative action) and is gone from the broker.
    row.locator("a.client-id").click()
    expect(page.locator("#client-details")).to_contain_text("MQTT 5", timeout=WAIT_MS)
    page.click("#detail-kick")
    confirm(page)
    gone = device.wait_disconnected()
    assert gone.reason_code == 0x98, gone
    # Its session ended with the connection (clean start, no expiry): the list no longer has it.
    expect(row).to_have_count(0, timeout=WAIT_MS)
    clients = api_get(node, "/clients?connected=true")["data"]
    assert [c["client_id"] for c in clients] == ["another-client"]
    other.close()
    device.close()


def test_a_rule_created_in_the_ui_fires(node, page):
    watcher = paho(node, "alert-watcher")
    watcher.connect_ok()
    watcher.subscribe("alerts/#", qos=1)
    sensor = paho(node, "sensor-9")
    sensor.connect_ok()

    log_in(page, node)
    go(page, "rules")
    page.click("#rule-create")
    page.fill("#rule-name", "too-hot")
    page.fill("#rule-sql", 'SELECT payload.temp AS t, clientid FROM "sensors/#" WHERE payload.temp > 30')
    page.fill("#rule-actions", json.dumps([{"republish": {"topic": "alerts/${clientid}", "payload": "hot ${t}", "qos": 1}}]))
    page.click("#rule-save")
    row = page.locator('#rules-table tr[data-key="too-hot"]')
    expect(row).to_be_visible(timeout=WAIT_MS)

    sensor.publish("sensors/kitchen", json.dumps({"temp": 42}), qos=1)
    sensor.publish("sensors/kitchen", json.dumps({"temp": 12}), qos=1)
    sensor.publish("sensors/kitchen", json.dumps({"temp": 35}), qos=1)
    first = watcher.get()
    second = watcher.get()
    assert (first.topic, first.payload) == ("alerts/sensor-9", b"hot 42")
    assert (second.topic, second.payload) == ("alerts/sensor-9", b"hot 35")
    # The page counts what the rule did: three matched, two passed WHERE.
    expect(row.locator(".rule-matched")).to_have_text("3", timeout=WAIT_MS)
    expect(row.locator(".rule-passed")).to_have_text("2", timeout=WAIT_MS)
    # Exactly two alerts: a marker published after them arrives next, with no third alert before it.
    sensor.publish("alerts/marker", "end", qos=1)
    assert watcher.get().topic == "alerts/marker"

    # The rule tester shows an output without publishing.
    page.fill("#test-sql", 'SELECT payload.temp * 2 AS double FROM "t/#"')
    page.fill("#test-topic", "t/1")
    page.fill("#test-payload", '{"temp": 21}')
    page.click("#test-run")
    expect(page.locator("#test-output")).to_contain_text('"double": 42', timeout=WAIT_MS)
    watcher.close()
    sensor.close()


def test_live_traffic_shows_a_message_published_by_another_client(node, page):
    log_in(page, node)
    go(page, "live")
    expect(page.locator("#live-url")).to_have_value(f"ws://127.0.0.1:{_ws_port(node)}/mqtt", timeout=WAIT_MS)
    page.fill("#live-filter", "plant/#")
    page.select_option("#live-qos", "1")
    page.click("#live-subscribe")
    expect(page.locator("#live-state")).to_contain_text("subscribed", timeout=WAIT_MS)

    publisher = paho(node, "plant-publisher", protocol=mqtt.MQTTv311)
    publisher.connect_ok()
    publisher.publish("plant/line-3/speed", "1250 rpm", qos=1)
    publisher.publish("elsewhere/x", "not for the page", qos=1)
    publisher.publish("plant/line-3/state", "running", qos=1)
    payloads = page.locator("#live-messages .live-payload")
    expect(payloads).to_have_count(2, timeout=WAIT_MS)
    # Newest first.
    expect(payloads).to_have_text(["running", "1250 rpm"])
    expect(page.locator("#live-count")).to_have_text("2 messages")
    # The browser is a client of the node like any other.
    browsers = [c for c in api_get(node, "/clients")["data"] if c["client_id"].startswith("ractmq-dashboard-")]
    assert len(browsers) == 1 and browsers[0]["protocol"] == "5.0", browsers
    publisher.close()


def _ws_port(node) -> int:
    listeners = api_get(node, "/listeners")
    return int(next(l for l in listeners if l["transport"] == "ws")["bound"].rsplit(":", 1)[1])


def test_a_killed_session_restart_shows_on_the_supervision_page(node, page):
    victim = paho(node, "victim-1")
    victim.connect_ok()
    victim.subscribe("v/#", qos=1)
    log_in(page, node)
    go(page, "supervision")
    expect(page.locator("#restarts-session")).to_have_text("0", timeout=WAIT_MS)
    kill = page.locator('[data-kill="session:victim-1"]')
    expect(kill).to_be_visible(timeout=WAIT_MS)
    kill.click()
    confirm(page)
    expect(page.locator("#restarts-session")).to_have_text("1", timeout=WAIT_MS)
    # The client lost its connection with the killed actor; the session is back under the session supervisor.
    victim.wait_disconnected()
    victim.close()
    assert api_get(node, "/stats")["session_restarts"] == 1


def test_screenshots_of_every_page_at_1280x800(node, page):
    OUTPUT.mkdir(parents=True, exist_ok=True)
    device = paho(node, "screenshot-device")
    device.connect_ok()
    device.subscribe("sensors/#", qos=1)
    device.publish("sensors/hall", '{"temp": 21}', qos=1, retain=True)
    log_in(page, node)
    for name in PAGES:
        go(page, name)
        # Wait for the page's data, not for time: every page fills a table, a tree or a form from the API.
        expect(page.locator("#view table, #view .tree, #view form").first).to_be_visible(timeout=WAIT_MS)
        if name == "overview":
            # The charts draw rates from the second sample on: wait for a few points to be drawn.
            expect(page.locator("#chart-messages")).to_have_attribute("data-points", re.compile(r"^([3-9]|\d\d+)$"),
                                                                    timeout=WAIT_MS)
            expect(page.locator("#tile-connections")).to_have_text("1", timeout=WAIT_MS)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1280, f"the {name} page is {width}px wide at 1280x800"
        page.screenshot(path=str(OUTPUT / f"{name}.png"))
    device.close()
    missing = set(PAGES) - {p.stem for p in OUTPUT.glob("*.png")}
    assert not missing, f"no screenshot of {missing}"


def test_kick_and_ban_from_the_clients_page_keeps_the_client_out(node, page):
    pest = paho(node, "pest-3")
    pest.connect_ok()
    log_in(page, node, "/#/clients?id=pest-3")
    expect(page.locator("#client-details")).to_contain_text("pest-3", timeout=WAIT_MS)
    page.click("#detail-ban")
    page.select_option("#ban-duration", "3600")
    page.fill("#ban-reason", "misbehaving in test")
    confirm(page)
    assert pest.wait_disconnected().reason_code == 0x98
    pest.close()
    # It may not come back: CONNACK 0x8A (banned).
    again = paho(node, "pest-3")
    refused = again.connect()
    assert refused.reason_code == 0x8A, refused
    again.close()
    go(page, "security")
    ban = page.locator('#security-bans tr[data-key="clientid:pest-3"]')
    expect(ban).to_contain_text("misbehaving in test", timeout=WAIT_MS)
    # Lifting the ban lets it in again.
    ban.locator("button", has_text="Lift").click()
    expect(ban).to_have_count(0, timeout=WAIT_MS)
    back = paho(node, "pest-3")
    back.connect_ok()
    back.close()


def test_publish_and_delete_a_retained_message_from_the_topics_page(node, page):
    reader = paho(node, "topic-reader")
    reader.connect_ok()
    reader.subscribe("factory/#", qos=1)
    log_in(page, node, "/#/topics?tab=publish")
    page.fill("#publish-topic", "factory/oven/setpoint")
    page.fill("#publish-payload", "220")
    page.select_option("#publish-qos", "1")
    page.check("#publish-retain")
    page.click("#publish-submit")
    expect(page.locator("#publish-result")).to_contain_text("to 1 local subscriber", timeout=WAIT_MS)
    got = reader.get()
    assert (got.topic, got.payload, got.qos) == ("factory/oven/setpoint", b"220", 1)

    page.click('.tabs [data-tab="retained"]')
    row = page.locator('#view tr[data-key="factory/oven/setpoint"]')
    expect(row).to_contain_text("220", timeout=WAIT_MS)
    row.locator('[data-action="delete-retained"]').click()
    confirm(page)
    expect(row).to_have_count(0, timeout=WAIT_MS)
    assert all(m["topic"] != "factory/oven/setpoint" for m in api_get(node, "/retained"))
    # A new subscriber gets no retained message: the marker published after is the first thing it sees.
    late = paho(node, "late-reader")
    late.connect_ok()
    late.subscribe("factory/#", qos=1)
    reader.publish("factory/marker", "m", qos=1)
    assert late.get().topic == "factory/marker"
    late.close()
    reader.close()


def test_a_bridge_created_and_edited_in_the_ui_moves_messages(broker_factory, node, page):
    remote = broker_factory()
    far = paho(remote, "far-reader", protocol=mqtt.MQTTv311)
    far.connect_ok()
    far.subscribe("#", qos=1)
    near = paho(node, "near-writer")
    near.connect_ok()

    log_in(page, node)
    go(page, "bridges")
    page.click("#bridge-create")
    page.select_option("#bridge-kind", "mqtt")
    page.fill("#bridge-json", json.dumps({
        "kind": "mqtt", "name": "to-far", "server": f"127.0.0.1:{remote.port}", "forward": ["out/#"], "qos": 1,
    }))
    page.click("#bridge-save")
    row = page.locator('#bridges-table tr[data-key="to-far"]')
    expect(row).to_contain_text("connected", timeout=WAIT_MS)
    near.publish("out/a", "1", qos=1)
    assert far.get().topic == "out/a"

    # Edit: forward another filter instead; what the old filter matches no longer crosses.
    row.locator("button", has_text="Edit").click()
    edited = json.loads(page.input_value("#bridge-json"))
    edited["forward"] = ["other/#"]
    page.fill("#bridge-json", json.dumps(edited))
    page.click("#bridge-save")
    expect(page.locator("dialog[open]")).to_have_count(0, timeout=WAIT_MS)
    expect(row).to_contain_text("connected", timeout=WAIT_MS)
    assert api_get(node, "/bridges/to-far")["forward"] == ["other/#"]
    near.publish("out/b", "2", qos=1)
    near.publish("other/c", "3", qos=1)
    got = far.get()
    assert (got.topic, got.payload) == ("other/c", b"3"), got

    row.locator("button", has_text="Delete").click()
    confirm(page)
    expect(row).to_have_count(0, timeout=WAIT_MS)
    assert api_get(node, "/bridges") == []
    near.close()
    far.close()


def test_the_cluster_page_draws_every_member_and_link(broker_factory, chromium, page):
    ports = [_free_port() for _ in range(3)]
    common = ["--cookie", "dashboard-test", "--api-user", f"{USER}:{PASSWORD}"]
    nodes = [broker_factory("--node-name", "n1", "--cluster-listen", f"127.0.0.1:{ports[0]}", *common)]
    for i in (1, 2):
        nodes.append(broker_factory("--node-name", f"n{i + 1}", "--cluster-listen", f"127.0.0.1:{ports[i]}",
                                    "--seed", f"n1@127.0.0.1:{ports[0]}", *common))
    first = nodes[0]
    first.api = f"http://{first.api_addr()}"
    log_in(page, first, "/#/cluster")
    for name in ("n1", "n2", "n3"):
        expect(page.locator(f'#cluster-members tr[data-key="{name}"]')).to_contain_text("up", timeout=WAIT_MS)
    expect(page.locator("#cluster-map .node")).to_have_count(3)
    # n1's links to n2 and n3, and the one between n2 and n3 as they said in their hellos.
    expect(page.locator("#cluster-map .link.up")).to_have_count(3, timeout=WAIT_MS)
    expect(page.locator('#cluster-map [data-between="n2-n3"]')).to_have_class(re.compile(r"\bup\b"))
    # And the queues both ways on every link, the other nodes' from their hellos: empty, nothing is flowing.
    expect(page.locator('#cluster-map text[data-queue="n2-n3"]')).to_have_text("n2→n3 0 · n3→n2 0", timeout=WAIT_MS)
    expect(page.locator('#cluster-map text[data-queue="n1-n2"]')).to_have_text("n1→n2 0 · n2→n1 0", timeout=WAIT_MS)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / "cluster-3-nodes.png"))
    # A member that dies shows as down, its link cut; forgotten, it is marked left everywhere.
    nodes[2].stop()
    n3 = page.locator('#cluster-members tr[data-key="n3"]')
    expect(n3).to_contain_text("down", timeout=3 * WAIT_MS)
    expect(page.locator("#cluster-map .link.down")).to_have_count(1, timeout=WAIT_MS)
    n3.locator('[data-action="forget"]').click()
    confirm(page)
    expect(n3).to_contain_text("left", timeout=WAIT_MS)
    second = nodes[1]
    second.api = f"http://{second.api_addr()}"
    n3_on_n2 = next(m for m in api_get(second, "/cluster")["members"] if m["name"] == "n3")
    assert n3_on_n2["state"] == "left", n3_on_n2

    # Evacuating this node: the button asks first, then the page shows the evacuation under way.
    page.click("#evacuate")
    confirm(page)
    expect(page.locator("#cluster-evacuation")).to_contain_text("evacuated", timeout=WAIT_MS)
    page.click("#evacuate-stop")
    expect(page.locator("#evacuate")).to_be_visible(timeout=WAIT_MS)

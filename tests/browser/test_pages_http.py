"""The pages' HTTP side, without a browser: status codes, the security policy, the vendored plotly.js."""

from __future__ import annotations

import gzip
import html
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.training.tasks import TASKS, KeyMetric
from app.web.app import create_app
from app.web.config import ROOT, Settings
from app.web.routes.pages import key_metric
from app.zoo.zoo import Zoo


def test_home_lists_every_model_grouped_by_task(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    for model_id in ("chars-lstm", "chars-gru", "chars-rnn", "words-lstm"):
        assert f'data-model-id="{model_id}"' in r.text
    assert 'href="/compare?task=test-chars' in r.text
    assert 'href="/models/words-lstm?text=a%20good%20film"' in r.text


def test_pages_run_only_their_own_scripts(client: TestClient) -> None:
    pages = ("/", "/models/chars-lstm", "/compare", "/models/chars-lstm/generate", "/models/words-lstm/learning")
    for path in (*pages, "/models/numbers-gru-attention", "/models/numbers-gru?text=twenty-one&beam=3"):
        r = client.get(path)
        assert r.status_code == 200, path
        policy = r.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-eval" not in policy.split("script-src")[1].split(";")[0]
        assert "<script>" not in r.text and " on" + "click=" not in r.text
        assert "http://" not in r.text.replace("http://www.w3.org", "") and "https://" not in r.text


def test_unknown_pages_answer_404_with_a_page(client: TestClient) -> None:
    for path in ("/models/nope", "/models/nope/generate", "/compare?task=nope", "/models/words-lstm/generate"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("text/html")
        assert "Back to the model zoo" in r.text


def test_plotly_comes_from_the_installed_package(client: TestClient) -> None:
    """The plotly package's bundle, or where static/build is current (make install) the partial bundle made from
    the npm registry's (tests/web/test_static_build.py): served from this server, never from outside."""
    url = re.search(
        r'src="((/static/(?:build/)?vendor/plotly\.min\.js)\?v=[0-9a-f]+)"', client.get("/models/chars-lstm").text
    )
    assert url is not None  # the page links the bundle at its content-hashed URL
    r = client.get(url[1], headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.content.startswith(b"/**\n* plotly.js ")  # httpx has already undone the gzip
    raw = client.get(url[2], headers={"Accept-Encoding": "identity"})
    assert raw.content == r.content and "content-encoding" not in raw.headers
    assert len(gzip.compress(raw.content)) < len(raw.content)
    again = client.get(url[2], headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


def test_static_modules_are_served_as_javascript(client: TestClient) -> None:
    for path in ("/static/js/player.js", "/static/js/views/unrolled.js", "/static/css/unrolled.css"):
        r = client.get(path)
        assert r.status_code == 200, path
    assert "javascript" in client.get("/static/js/api.js").headers["content-type"]


def test_a_card_shows_the_metric_that_says_how_good_it_is() -> None:
    memory = TASKS["memory"].key_metric({"chance": 0.125, "accuracy_by_n": {"5": 0.99, "100": 0.26}})
    assert memory == KeyMetric("accuracy, 5 / 100 digits back", "99.0 % / 26.0 %")  # short memory, and long
    bpc = TASKS["charlm"].key_metric({"heldout_bpc": 2.134, "eval_streams": 32})
    assert bpc is not None and bpc.value == "2.13"
    assert TASKS["memory"].key_metric({"chance": 0.125}) is None
    zoo = Zoo.load(ROOT / "models")
    assert all(key_metric(m.card) is not None for m in zoo)  # every task of the zoo says how good its models are
    # a model of no task the app knows (someone's own): its accuracy, else its first number
    card = next(iter(zoo)).card
    own = replace(card, task="my-task", metrics={"loss": 0.31, "accuracy": 0.5})
    assert key_metric(own) == KeyMetric("accuracy", "50.0 %")
    assert key_metric(replace(own, metrics={"loss": 0.31})) == KeyMetric("loss", "0.31")


def test_the_api_docs_are_served_from_the_installed_package_under_the_strict_policy(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200 and "/static/vendor/swagger-ui/swagger-ui-bundle.js" in r.text
    assert "http" not in r.text.replace('charset="utf-8"', "")  # nothing from outside the server
    csp = r.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "http" not in csp  # no CDN, no inline script
    assert client.get(r.url.path.replace("/docs", "/static/vendor/swagger-ui/swagger-ui-bundle.js")).status_code == 200
    assert client.get("/redoc").status_code == 404


def test_a_translation_model_has_its_own_page_with_its_attention_peer(client: TestClient) -> None:
    r = client.get("/models/numbers-gru-attention?text=twenty-one")
    assert r.status_code == 200 and 'data-page="translate"' in r.text
    assert 'data-model="numbers-gru-attention"' in r.text and 'data-attention="1"' in r.text
    assert 'data-peer="numbers-gru"' in r.text  # the same task and cell, attention switched
    assert "/static/js/pages/translate.js" in r.text and 'id="attention-switch"' in r.text
    off = client.get("/models/numbers-gru").text
    assert 'data-attention="0"' in off and 'data-peer="numbers-gru-attention"' in off
    # the LSTM with attention has no LSTM without: its peer is the task's model without attention
    assert 'data-peer="numbers-gru"' in client.get("/models/numbers-lstm-attention").text


def test_the_home_page_leads_translators_to_their_page_and_nowhere_else(client: TestClient) -> None:
    r = client.get("/")
    card = r.text.split('data-model-id="numbers-gru-attention"')[1].split("</article>")[0]
    assert 'href="/models/numbers-gru-attention">Translate</a>' in card
    assert 'href="/models/numbers-gru-attention?text=twenty-one"' in card  # an example, on its page
    assert "/learning" not in card and "/generate" not in card and "encoder–decoder, with attention" in card
    assert "/compare?task=test-numbers" not in r.text  # translators are not compared cell by cell


def test_pages_a_translator_does_not_have_say_where_it_is(client: TestClient) -> None:
    for path, says in [
        ("/models/numbers-gru/generate", "translates (its page: /models/numbers-gru)"),
        ("/models/numbers-gru/learning", "is a translation model"),
        ("/compare?task=test-numbers", "/models/numbers-lstm-attention"),
    ]:
        r = client.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert says in r.text and "Back to the model zoo" in r.text, path
    compare = client.get("/compare").text
    assert "test-numbers" not in compare.split('class="crumbs"')[1].split("</nav>")[0]  # not offered as a task


@pytest.fixture(scope="module")
def zoo_client(settings: Settings) -> Iterator[TestClient]:
    """The app on the zoo's own models: its melody (notes) and sunspots (numbers) tasks."""
    with TestClient(create_app(settings.model_copy(update={"models_dir": ROOT / "models"}))) as c:
        yield c


def carried_cards(body: str) -> dict[str, Any]:
    raw = html.unescape(body.split("data-cards='")[1].split("'")[0])
    cards: dict[str, Any] = json.loads(raw)
    return cards


def test_a_melody_model_has_a_page_that_plays_it(zoo_client: TestClient) -> None:
    r = zoo_client.get("/models/melody-lstm?text=C4:1%20E4:1")
    assert r.status_code == 200 and 'data-page="melody"' in r.text and 'data-writing="0"' in r.text
    assert "/static/js/pages/melody.js" in r.text and 'id="roll"' in r.text and 'id="sound"' in r.text
    card = carried_cards(r.text)["melody-lstm"]  # the page needs no request for its card
    assert card["vocab_level"] == "note" and "E4:1" in card["vocab"] and card["examples"][0]["text"].startswith("E4:1")
    # generation is the same page, writing
    w = zoo_client.get("/models/melody-gru/generate")
    assert w.status_code == 200 and 'data-page="melody"' in w.text and 'data-writing="1"' in w.text


def test_a_series_model_has_a_page_with_its_baselines(zoo_client: TestClient) -> None:
    r = zoo_client.get("/models/sunspots-gru")
    assert r.status_code == 200 and 'data-page="series"' in r.text and "/static/js/pages/series.js" in r.text
    card = carried_cards(r.text)["sunspots-gru"]
    assert card["kind"] == "series" and card["vocab"] is None and card["series"]["features"] == ["sunspots"]
    table = r.text.split('id="metrics"')[1].split("</table>")[0]
    metrics = card["metrics"]
    for figure in (metrics["heldout_rmse"], metrics["heldout_persistence_rmse"], metrics["heldout_ar_rmse"]):
        assert f"<td>{figure:.1f}</td>" in table
    assert "sunspots-rnn" in table and "sunspots-lstm" in table and 'class="this"><td>GRU (sunspots-gru)' in table


def test_the_home_page_leads_melody_and_series_models_to_their_pages(zoo_client: TestClient) -> None:
    r = zoo_client.get("/")
    assert r.status_code == 200
    series = r.text.split('data-model-id="sunspots-lstm"')[1].split("</article>")[0]
    assert 'href="/models/sunspots-lstm">Forecast</a>' in series and 'href="/models/sunspots-lstm?example=1"' in series
    assert "/learning" not in series and "/generate" not in series and "/compare?task=sunspots" not in r.text
    melody = r.text.split('data-model-id="melody-lstm"')[1].split("</article>")[0]
    assert 'href="/models/melody-lstm">Play</a>' in melody
    assert 'href="/models/melody-lstm/generate">Generate</a>' in melody
    assert "/learning" not in melody and 'href="/compare?task=melody' in r.text  # three next-note cells to compare


def test_pages_a_melody_or_series_model_does_not_have_say_where_it_is(zoo_client: TestClient) -> None:
    for path, says in [
        ("/models/sunspots-lstm/generate", "its free-running forecast (what it writes) is on its own page"),
        ("/models/sunspots-lstm/learning", "is a series model"),
        ("/models/melody-rnn/learning", "is a melody model"),
        ("/compare?task=sunspots", "reads numbers"),
    ]:
        r = zoo_client.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert says in r.text and "Back to the model zoo" in r.text, path
    compare = zoo_client.get("/compare?task=melody")
    assert compare.status_code == 200
    assert set(carried_cards(compare.text)) >= {"melody-rnn", "melody-lstm", "melody-gru"}

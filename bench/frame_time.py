"""Animation frame time of the model view on a 1000-step LSTM input, in headless Chromium.

The player records, for every animation frame in which the cursor moved, how long the views took to render it
(window.__unrolled.frames) and the time between frames (window.__unrolled.intervals). This plays the whole
presentation (the forward sweep, then the BPTT sweep) at two speeds, and measures an idle page's frame interval
in the same run as the baseline. Goal: a median render under 16 ms (one frame at 60 Hz).

    python -m bench.frame_time [--steps 1000] [--speeds 60 480]

Uses the zoo's charlm-lstm when models/ has it; otherwise a hidden-128 test LSTM written to a temporary folder.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from playwright.sync_api import CDPSession, Page, sync_playwright

from app.web.config import ROOT, Settings
from bench.common import table
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import LiveServer, write_model

PROSE = (
    "The for statement is used to iterate over the elements of a sequence, such as a string, tuple or list, "
    "or other iterable object. An exception is raised when an error is detected during execution. "
)


def pick_model(tmp: Path) -> tuple[Path, str, str]:
    """(models folder, model id, description)."""
    zoo = ROOT / "models"
    if (zoo / "charlm-lstm.json").exists():
        return zoo, "charlm-lstm", "zoo charlm-lstm"
    write_model(tmp, "bench-lstm", "lstm", "next_token", hidden=128)
    return tmp, "bench-lstm", "test LSTM, hidden 128 (no zoo charlm-lstm yet)"


def text_of(steps: int, model_id: str) -> str:
    body = PROSE if model_id == "charlm-lstm" else PROSE.lower().replace("-", " ")
    return (body * (steps // len(body) + 1))[:steps]


def stats(samples: list[float]) -> list[str]:
    if not samples:
        return ["0", "–", "–", "–"]
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return [str(len(samples)), f"{statistics.median(samples):.2f}", f"{p95:.2f}", f"{ordered[-1]:.2f}"]


def main_thread_ms(cdp: CDPSession) -> dict[str, float]:
    """Chromium's own running totals of main-thread work (ms): every task, and script, style and layout."""
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    names = {
        "task": "TaskDuration",
        "script": "ScriptDuration",
        "style": "RecalcStyleDuration",
        "layout": "LayoutDuration",
    }
    return {k: 1000 * float(metrics[v]) for k, v in names.items()}


def play(page: Page, cdp: CDPSession) -> dict[str, Any]:
    """Play the whole presentation from the first step (at the URL's speed); return the recorded samples."""
    before = main_thread_ms(cdp)
    page.evaluate(
        """() => {
          const u = window.__unrolled;
          u.frames.length = 0;
          u.intervals.length = 0;
          document.querySelector('#player [data-action=home]').click();
          document.querySelector('#player [data-action=play]').click();
        }"""
    )
    page.wait_for_function(
        "() => window.__unrolled.cursor.phase === 'backward' && window.__unrolled.cursor.t === 0"
        " && !window.__unrolled.cursor.playing",
        timeout=180_000,
        polling=200,
    )
    result: dict[str, Any] = page.evaluate(
        "() => ({frames: window.__unrolled.frames, intervals: window.__unrolled.intervals})"
    )
    after = main_thread_ms(cdp)
    n = max(1, len(result["intervals"]))
    result["per_frame"] = {k: (after[k] - before[k]) / n for k in after}
    return result


def idle_intervals(page: Page, frames: int = 240) -> list[float]:
    """The baseline: intervals of a bare requestAnimationFrame loop on the same page, the player paused."""
    out: list[float] = page.evaluate(
        """(n) => new Promise((resolve) => {
          const out = [];
          let last = null;
          const tick = (now) => {
            if (last !== null) out.push(now - last);
            last = now;
            if (out.length < n) requestAnimationFrame(tick); else resolve(out);
          };
          requestAnimationFrame(tick);
        })""",
        frames,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--speeds", type=float, nargs="+", default=[60.0, 480.0])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder, model_id, what = pick_model(Path(tmp))
        settings = Settings(models_dir=folder, max_steps=max(args.steps, 3000), send_timeout=30.0)
        with LiveServer(settings) as live, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            text = text_of(args.steps, model_id)
            page.goto(f"{live.url}/models/{model_id}?text={quote(text)}&speed={args.speeds[0]:g}")
            page.wait_for_function("() => (window.__unrolled?.loaded ?? 0) >= 1", timeout=120_000)
            load_ms = page.evaluate("() => performance.now()")
            rows = []
            notes: list[str] = []
            for speed in args.speeds:
                page.goto(f"{live.url}/models/{model_id}?text={quote(text)}&speed={speed:g}")
                page.wait_for_function("() => (window.__unrolled?.loaded ?? 0) >= 1", timeout=120_000)
                page.wait_for_timeout(500)
                samples = play(page, cdp)
                rows.append([f"views' render per frame, {speed:g} steps/s", *stats(samples["frames"])])
                rows.append([f"frame interval, {speed:g} steps/s", *stats(samples["intervals"])])
                work = samples["per_frame"]
                parts = f"script {work['script']:.1f}, style {work['style']:.1f}, layout {work['layout']:.1f}"
                notes.append(
                    f"{speed:g} steps/s: main thread busy {work['task']:.1f} ms per frame ({parts}; the rest paint)"
                )
            rows.append(["frame interval, idle page (baseline)", *stats(idle_intervals(page))])
            browser.close()
    print(f"Frame time of the model view: {args.steps}-step input on {what}, headless Chromium at 1280×720")
    print(f"(the whole trace had arrived {load_ms / 1000:.1f} s after navigation; goal: render ≤ 16 ms per frame)\n")
    print(table(["what", "frames", "median ms", "p95 ms", "max ms"], rows))
    print("\nMean main-thread work per frame while playing (Chromium's Performance.getMetrics):")
    print(*notes, sep="\n")
    if errors:
        print("\npage errors:", *errors, sep="\n  ")


if __name__ == "__main__":
    main()

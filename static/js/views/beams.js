// Beam search's result: every candidate the beam kept, best first, with its score Σ log p (every written
// token, the end included) and p = exp(score) as a bar. The first is the one the page traces. TextBeamsView: the
// same list for a family whose candidates are texts with a log-probability (speech's prefix beam search, the
// caption's beam search).

import { node } from "../dom.js";
import { showLetter } from "../translation.js";
import { View } from "./base.js";

export class BeamsView extends View {
  /** root: an <ol> (or any element) the candidates are listed in. */
  constructor(root) {
    super(root);
  }

  /** Only a trace (or none: the list empties) changes the candidates; the cursor does not. */
  update(data) {
    if (data.trace === undefined) return;
    this.take(data);
    this.refresh(data);
  }

  drawKey() {
    const tr = this.trace;
    return [tr, tr?.version, tr?.beams?.length ?? 0];
  }

  prepare() {
    const trace = this.trace;
    const beams = trace?.beams ?? [];
    this.root.replaceChildren(
      ...beams.map((b, n) => {
        const li = node("li", `beam${n === 0 ? " best" : ""}${b.finished ? "" : " unfinished"}`);
        li.dataset.score = String(b.score);
        const out = node("span", "beam-output", b.output === "" ? "(nothing: it ended at once)" : b.output);
        if (b.output === "") out.classList.add("beam-empty");
        const end = node("span", "beam-end", b.finished ? showLetter("</s>") : "…");
        end.title = b.finished ? "ended with </s>" : "stopped at max_length without ending";
        out.append(end);
        const score = node("span", "beam-score", b.score.toFixed(2));
        score.title = "Σ log p of every written token, the end included";
        const p = node("span", "beam-p", `p ${Math.exp(b.score).toPrecision(2)}`);
        const track = node("span", "bar-track");
        const fill = node("span", "bar-fill");
        fill.style.width = `${(100 * Math.exp(b.score)).toFixed(1)}%`;
        track.append(fill);
        li.append(out, score, p, track);
        return li;
      }),
    );
    if (!beams.length && trace) this.root.append(node("li", "beam beam-empty", "the beams arrive with the translation"));
  }
}

/**
 * A family's text candidates ({text, logProb (null: not scored), finished (false: stopped at max_length)} as its
 * readTrace gives them), best first: each text and its line `${label} = log p (p = exp)`. Only a trace changes
 * the list, as for the translation's. A family's own view extends it with its label and links its stylesheet.
 */
export class TextBeamsView extends BeamsView {
  /** label: what the family calls the score ("log p", "Σ log p"). */
  constructor(root, label) {
    super(root);
    this.label = label;
  }

  prepare() {
    const beams = this.trace?.beams ?? [];
    this.root.replaceChildren(
      ...beams.map((b, i) => {
        const li = node("li", `beam${i === 0 ? " best" : ""}`);
        li.append(node("span", "beam-output", b.text || "(nothing)"));
        if (b.logProb !== null) {
          const unfinished = b.finished === false ? " · unfinished" : "";
          li.append(node("span", "beam-score", `${this.label} = ${b.logProb.toFixed(2)} (p = ${Math.exp(b.logProb).toPrecision(2)})${unfinished}`));
        }
        return li;
      }),
    );
  }
}

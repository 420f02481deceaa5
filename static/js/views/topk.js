// The decoder's top-k at the cursor: p(next letter) read from s_t (and the context c_t) through the head and a
// softmax; green: the letter this output has at that step (what the loss L is measured against).

import { node } from "../dom.js";
import { showToken } from "../trace.js";
import { showLetter } from "../translation.js";
import { View } from "./base.js";

export class TopKView extends View {
  constructor(root, { k = 5 } = {}) {
    super(root);
    root.classList.add("topk");
    this.k = k;
    this.note = node("p", "bar-legend");
    this.bars = node("div", "bars");
    root.append(this.note, this.bars);
    this.rows = Array.from({ length: k }, () => {
      const bar = node("div", "bar");
      const label = node("span", "bar-label");
      const track = node("span", "bar-track");
      const fill = node("span", "bar-fill");
      track.append(fill);
      const value = node("span", "bar-value");
      bar.append(label, track, value);
      this.bars.append(bar);
      return { bar, label, fill, value };
    });
  }

  /** Drawn again at each step of the cursor and as the trace grows. */
  drawKey() {
    return [this.trace, this.trace.version, this.cursor.t];
  }

  prepare() {
    const tr = this.trace;
    const { side, i } = tr.at(this.cursor.t);
    const preds = side === "decoder" ? tr.predictions[i] : null;
    let note;
    if (side === "encoder") note = `The encoder reads “${showToken(tr.source[i])}”: the decoder writes once the whole number is read.`;
    else if (!preds) note = "";
    else note = `Letter ${i + 1}: green is “${showLetter(tr.written[i])}”, the letter this output has here.`;
    if (this.note.textContent !== note) this.note.textContent = note;
    this.rows.forEach((r, n) => {
      const p = preds?.[n];
      r.bar.hidden = !p;
      if (!p) return;
      r.label.textContent = showLetter(p.token);
      r.fill.style.width = `${(100 * p.p).toFixed(1)}%`;
      r.value.textContent = p.p.toFixed(2);
      r.bar.classList.toggle("hit", p.token === tr.written[i]);
    });
  }
}

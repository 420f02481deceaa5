// The text being written: the prompt, then each sampled token, shown up to the time cursor.

import { bus } from "../bus.js";
import { View } from "./base.js";

export class GenOutputView extends View {
  constructor(root, { info }) {
    super(root);
    this.info = info;
    this.spans = [];
    this.current = -1;
    this.shown = -1;
    root.addEventListener("click", (e) => {
      const s = e.target.closest("[data-t]");
      if (s) bus.emit("seek", { t: Number(s.dataset.t) });
    });
  }

  /** A new text starts from nothing. */
  take(data) {
    if (data.trace !== undefined && data.trace !== this.trace) {
      this.root.replaceChildren();
      this.spans = [];
      this.current = -1;
      this.shown = -1;
    }
    super.take(data);
  }

  /** One span per token, appended as the tokens are sampled. */
  drawKey() {
    return [this.trace, this.trace.steps];
  }

  prepare() {
    const tr = this.trace;
    while (this.spans.length < tr.steps) {
      const t = this.spans.length;
      const s = document.createElement("span");
      s.dataset.t = String(t);
      s.className = `${t < tr.promptSteps ? "prompt" : "gen"} ahead`;
      s.textContent = tr.tokens[t];
      this.root.append(s);
      this.spans.push(s);
    }
  }

  render() {
    const tr = this.trace;
    const upTo = this.cursor.phase === "backward" ? tr.steps - 1 : Math.min(this.cursor.t, tr.steps - 1);
    if (upTo !== this.shown) {
      const lo = Math.min(upTo, this.shown) + 1;
      const hi = Math.max(upTo, this.shown);
      for (let t = Math.max(0, lo); t <= hi && t < this.spans.length; t++) this.spans[t].classList.toggle("ahead", t > upTo);
      this.shown = upTo;
    }
    const t = this.cursor.t;
    if (t !== this.current) {
      this.spans[this.current]?.classList.remove("cur");
      this.current = t;
      this.spans[t]?.classList.add("cur");
      const s = this.spans[t];
      if (s && this.root.scrollHeight > this.root.clientHeight) {
        const top = s.offsetTop - this.root.offsetTop;
        if (top < this.root.scrollTop || top > this.root.scrollTop + this.root.clientHeight - 30) this.root.scrollTop = top - this.root.clientHeight / 2;
      }
    }
    if (this.info) {
      const written = Math.max(0, Math.min(upTo + 1, tr.steps) - tr.promptSteps);
      const text = `${written} token${written === 1 ? "" : "s"} written${tr.done ? "" : " — streaming…"}`;
      if (this.info.textContent !== text) this.info.textContent = text;
    }
  }
}

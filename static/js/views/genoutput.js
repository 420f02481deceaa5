// The text being written: the prompt, then each sampled token, shown up to the time cursor.

import { bus } from "../bus.js";

export class GenOutputView {
  constructor(root, { info }) {
    this.root = root;
    this.info = info;
    this.trace = null;
    this.spans = [];
    this.cursor = { phase: "forward", t: 0 };
    this.current = -1;
    this.shown = -1;
    root.addEventListener("click", (e) => {
      const s = e.target.closest("[data-t]");
      if (s) bus.emit("seek", { t: Number(s.dataset.t) });
    });
  }

  update(data) {
    if (data.trace !== undefined && data.trace !== this.trace) {
      this.trace = data.trace;
      this.root.replaceChildren();
      this.spans = [];
      this.current = -1;
      this.shown = -1;
    }
    if (data.cursor) this.cursor = data.cursor;
    const tr = this.trace;
    if (!tr) return;
    while (this.spans.length < tr.steps) {
      const t = this.spans.length;
      const s = document.createElement("span");
      s.dataset.t = String(t);
      s.className = `${t < tr.promptSteps ? "prompt" : "gen"} ahead`;
      s.textContent = tr.tokens[t];
      this.root.append(s);
      this.spans.push(s);
    }
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

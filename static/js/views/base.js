// One lifecycle for every view: update(data) takes what changed (trace, cursor, unit, layer; a relayout), then
// prepare() does the costly drawing again only when it is stale, then render() does the cheap part (the cursor,
// the readout) at every update.
//
// The one staleness rule: drawKey() lists what the drawing is made from (the trace, its steps, the layer, …);
// the drawing is stale when that list differs from the one last drawn, entry by entry (===), or on a relayout.
// drawKey() returns null when there is nothing to draw yet: a drawing of another trace then stays, unless the
// view's clear() takes it away (a plot of the last input's gradients while the new input's are on their way), and
// likewise when the trace itself is taken away (null: a row of /compare whose model is running again).
// A view made with `onScreen` draws only while near the screen (plots.js visibility) and catches up when shown.

import { visibility } from "../plots.js";

/** Are two draw keys the same list? */
export const sameKey = (a, b) => a !== null && b !== null && a.length === b.length && a.every((x, i) => x === b[i]);

export class View {
  constructor(root, { name = null, onScreen = false } = {}) {
    this.root = root;
    this.name = name;
    this.trace = null;
    this.cursor = { phase: "forward", t: 0 };
    this.unit = 0;
    this.layer = 0;
    this.drawn = null; // the draw key of what is drawn
    this.view = onScreen ? visibility(root, (data) => this.update(data)) : null;
  }

  /** What an update brings: the trace (null clears it), the cursor, the unit and layer followed. */
  take(data) {
    if (data.trace !== undefined) this.trace = data.trace;
    if (data.cursor) this.cursor = data.cursor;
    if (data.unit !== undefined) this.unit = data.unit;
    if (data.layer !== undefined) this.layer = data.layer;
  }

  update(data) {
    this.take(data);
    if (this.trace) this.refresh(data);
    else if (this.drawn && this.clear() !== false) this.drawn = null; // the trace taken away (null)
  }

  /** Prepare again if stale (or clear another trace's drawing), then render. */
  refresh(data = {}) {
    const key = this.view && !this.view.visible ? null : this.drawKey();
    if (key === null) {
      if (this.drawn && this.drawn[0] !== this.trace && this.clear() !== false) this.drawn = null;
    } else if (data.relayout || !sameKey(key, this.drawn)) {
      const last = this.drawn;
      this.drawn = key;
      this.prepare(last, data);
    }
    this.render();
  }

  /** What the drawing is made from, first the trace; null: nothing to draw yet. */
  drawKey() {
    return null;
  }

  /**
   * The costly drawing (a Plotly figure, the DOM of every step). last: the key drawn before, for a view that
   * draws a growing trace less often than its steps arrive.
   */
  prepare(last, data) {}

  /** Another trace came while there is nothing of it to draw, or none: false keeps the old drawing, else it is gone. */
  clear() {
    return false;
  }

  /** The cheap part, at every update: the cursor, the readout. */
  render() {}
}

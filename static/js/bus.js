// One event bus per page: views and controllers talk through named events, never to each other directly.
//   cursor   {phase, t, playing}   the player moved (at most once per animation frame)
//   trace    {trace}               a new trace began (meta frame or REST body)
//   data     {trace}               more frames arrived (coalesced: at most once per animation frame)
//   unit     {layer, unit}         the presenter chose a unit to follow
//   seek     {t, phase?}           someone asked the player to jump
//   layout   {}                    the page's size or presenter mode changed
//   status   {kind, message}       a message for the status line
//   part     {part, q, model}      a part of the cell's drawing was lit (hovered or stepped to; null: none); q: the
//                                  quantity it carries (a gate, c or h), lit in the tables too

class Bus {
  constructor() {
    this.handlers = new Map();
  }

  on(name, fn) {
    if (!this.handlers.has(name)) this.handlers.set(name, new Set());
    this.handlers.get(name).add(fn);
    return () => this.handlers.get(name).delete(fn);
  }

  emit(name, data = {}) {
    const fns = this.handlers.get(name);
    if (!fns) return;
    for (const fn of [...fns]) fn(data);
  }
}

export const bus = new Bus();

// What the page exposes to tests and the frame-time bench: the cursor, the state, render times per frame.
window.__unrolled = window.__unrolled ?? {};

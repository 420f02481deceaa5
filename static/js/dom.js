// The DOM helpers the views and the panels share: an element, a family's stylesheet, a column of squares.

/** A new element: its tag, its class names and its text (each optional). */
export function node(tag, className = "", text = "") {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text) e.textContent = text;
  return e;
}

/** A family's own stylesheet (static/css/NAME.css, marked data-NAME-css), linked once by the first of its views on a page or a stage. */
export function linkStyles(name) {
  if (document.querySelector(`link[data-${name}-css]`)) return;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = `/static/css/${name}.css`;
  link.setAttribute(`data-${name}-css`, "");
  document.head.append(link);
}

/** A canvas as a column of squares, one per value, top to bottom (drawn 1 px each: CSS stretches it). */
export function paintColumn(c, values, colourOf) {
  c.width = 1;
  c.height = Math.max(1, values.length);
  const ctx = c.getContext("2d");
  values.forEach((v, i) => {
    ctx.fillStyle = colourOf(v);
    ctx.fillRect(0, i, 1, 1);
  });
}

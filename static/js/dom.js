// The one DOM helper the views and the panels share.

/** A new element: its tag, its class names and its text (each optional). */
export function node(tag, className = "", text = "") {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text) e.textContent = text;
  return e;
}

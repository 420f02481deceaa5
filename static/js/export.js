// Export of the views that are not Plotly plots: an SVG element as SVG or PNG, a canvas as PNG.

/** Save a data or object URL as a file (every export, Plotly's included, goes through here). */
export function download(url, filename) {
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
}

/** Exports are counted for the browser tests. */
export function count() {
  window.__unrolled.exports = (window.__unrolled.exports ?? 0) + 1;
}

/** Serialise an <svg> (its own <style> element travels with it) with a white background. */
export function svgText(svg, box = null) {
  const clone = svg.cloneNode(true);
  const rect = svg.getBoundingClientRect();
  const width = box ? box.width : rect.width;
  const height = box ? box.height : rect.height;
  clone.removeAttribute("style");
  if (box) clone.setAttribute("viewBox", `${box.x} 0 ${box.width} ${box.height}`);
  clone.setAttribute("xmlns", "http://www.w3.org/2000/svg");
  clone.setAttribute("width", String(Math.round(width)));
  clone.setAttribute("height", String(Math.round(height)));
  const bg = document.createElementNS("http://www.w3.org/2000/svg", "rect");
  bg.setAttribute("x", box ? String(box.x) : "0");
  bg.setAttribute("width", box ? String(box.width) : "100%");
  bg.setAttribute("height", "100%");
  bg.setAttribute("fill", "#ffffff");
  clone.insertBefore(bg, clone.firstChild);
  return { text: new XMLSerializer().serializeToString(clone), width, height };
}

export function exportSvg(svg, name, box = null) {
  const { text } = svgText(svg, box);
  const url = URL.createObjectURL(new Blob([text], { type: "image/svg+xml" }));
  download(url, `${name}.svg`);
  setTimeout(() => URL.revokeObjectURL(url), 5000);
  count();
}

export function exportSvgAsPng(svg, name, scale = 2, box = null) {
  const { text, width, height } = svgText(svg, box);
  const url = URL.createObjectURL(new Blob([text], { type: "image/svg+xml" }));
  const img = new Image();
  img.onload = () => {
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    const ctx = canvas.getContext("2d");
    ctx.scale(scale, scale);
    ctx.drawImage(img, 0, 0);
    URL.revokeObjectURL(url);
    download(canvas.toDataURL("image/png"), `${name}.png`);
    count();
  };
  img.src = url;
}

/** Two small buttons, PNG and SVG, for a panel's header. */
export function exportButtons(container, onPng, onSvg) {
  const box = document.createElement("span");
  box.className = "export";
  for (const [label, fn] of [
    ["PNG", onPng],
    ["SVG", onSvg],
  ]) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "tool tool-small";
    b.textContent = label;
    b.title = `Download ${label}`;
    b.dataset.export = label.toLowerCase();
    b.addEventListener("click", fn);
    box.append(b);
  }
  container.append(box);
  return box;
}

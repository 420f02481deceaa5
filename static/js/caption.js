// The caption page's pictures: scenes of shapes drawn here by the training's rules (GET /api/caption-scenes:
// app/training/tasks/shapes_data.py's sizes, colours and gaps, and each shape's pixels as Pillow fills them), made
// into the PNG the caption API reads; a scene from its words (an example caption, a tour scene's input); a random
// scene; the caption the rules give a scene; and the caption reply read into one shape for the views.

/** The rules' side s of a shape of each size word, when a scene is made from words or resized: mid-range. */
const SIDE = { small: 12, big: 22 };
const RELATION = /^(left of|right of|above|below)$/;

/** A shape's box [x0, y0, x1, y1) and centre. */
const box = (sh) => [sh.x, sh.y, sh.x + sh.s, sh.y + sh.s];
export const centre = (sh) => [sh.x + sh.s / 2, sh.y + sh.s / 2];

/** A side in the rules' range for `size`: the shape's own if it fits, else the mid-range one. */
export function sideFor(rules, size, s = null) {
  const [lo, hi] = rules.sizes[size];
  return s !== null && s >= lo && s <= hi ? s : Math.min(hi, Math.max(lo, SIDE[size] ?? lo));
}

/** The shape kept inside the picture, MARGIN px from its edges. */
export function clamp(rules, sh) {
  const top = rules.size - rules.margin - sh.s;
  return { ...sh, x: Math.max(rules.margin, Math.min(top, Math.round(sh.x))), y: Math.max(rules.margin, Math.min(top, Math.round(sh.y))) };
}

/** The scene's pixels (RGBA, rules.size²): white, then each shape's rows as Pillow fills them. */
export function paint(rules, shapes) {
  const n = rules.size;
  const px = new Uint8ClampedArray(n * n * 4);
  const [r0, g0, b0] = rules.background;
  for (let i = 0; i < n * n; i++) px.set([r0, g0, b0, 255], i * 4);
  for (const sh of shapes) {
    const rows = rules.masks[sh.shape][String(sh.s)];
    const [r, g, b] = rules.colours[sh.colour];
    rows.forEach((span, dy) => {
      const y = sh.y + dy;
      if (!span || y < 0 || y >= n) return;
      for (let x = Math.max(0, sh.x + span[0]); x < Math.min(n, sh.x + span[1]); x++) px.set([r, g, b, 255], (y * n + x) * 4);
    });
  }
  return new ImageData(px, n, n);
}

/** The scene as a PNG file (a Blob): its pixels exactly (a PNG is lossless; the canvas is not scaled). */
export function pngOf(rules, shapes) {
  const c = document.createElement("canvas");
  c.width = c.height = rules.size;
  c.getContext("2d").putImageData(paint(rules, shapes), 0, 0);
  return new Promise((resolve, reject) => c.toBlob((b) => (b ? resolve(b) : reject(new Error("the browser made no PNG"))), "image/png"));
}

/** Where a is against b by the rules: from the centres, along the axis where they differ more (y points down). */
export function relation(a, b) {
  const [[ax, ay], [bx, by]] = [centre(a), centre(b)];
  const [dx, dy] = [ax - bx, ay - by];
  if (Math.abs(dx) > Math.abs(dy)) return dx < 0 ? "left of" : "right of";
  return dy < 0 ? "above" : "below";
}

const words = (sh) => `${sh.size} ${sh.colour} ${sh.shape}`;

/** The rules' order: small before big, then the colours' order, then the shapes'. */
function order(rules, sh) {
  return [Object.keys(rules.sizes).indexOf(sh.size), Object.keys(rules.colours).indexOf(sh.colour), rules.shapes.indexOf(sh.shape)];
}

const before = (p, q) => p[0] - q[0] || p[1] - q[1] || p[2] - q[2];

/** What keeps two shapes from being a scene of the rules (touching, a diagonal, identical), or "" if nothing. */
export function problem(rules, [a, b]) {
  const [ax0, ay0, ax1, ay1] = box(a);
  const [bx0, by0, bx1, by1] = box(b);
  const g = rules.gap;
  if (!(ax1 + g <= bx0 || bx1 + g <= ax0 || ay1 + g <= by0 || by1 + g <= ay0)) return `the shapes are closer than ${g} px`;
  const [[cx, cy], [dx, dy]] = [centre(a), centre(b)];
  if (Math.abs(Math.abs(cx - dx) - Math.abs(cy - dy)) < rules.clear) return "one is diagonal from the other: the rules draw no such scene";
  if (words(a) === words(b)) return "the two shapes are the same";
  return "";
}

/** The caption the rules give two shapes (the smaller-ranked named first). */
export function ruleCaption(rules, shapes) {
  if (shapes.length !== 2) return null;
  const [a, b] = before(order(rules, shapes[0]), order(rules, shapes[1])) <= 0 ? shapes : [shapes[1], shapes[0]];
  return `a ${words(a)} ${relation(a, b)} a ${words(b)}`;
}

/** A random scene by the rules (any kinds, two different; apart and clear of a diagonal). */
export function randomScene(rules, rand = Math.random) {
  const pick = (xs) => xs[Math.floor(rand() * xs.length)];
  for (;;) {
    const kinds = [0, 1].map(() => ({ shape: pick(rules.shapes), size: pick(Object.keys(rules.sizes)), colour: pick(Object.keys(rules.colours)) }));
    if (words(kinds[0]) === words(kinds[1])) continue;
    for (let i = 0; i < 50; i++) {
      const shapes = kinds.map((k) => {
        const [lo, hi] = rules.sizes[k.size];
        const s = lo + Math.floor(rand() * (hi - lo + 1));
        const top = rules.size - rules.margin - s;
        const at = () => rules.margin + Math.floor(rand() * (top - rules.margin + 1));
        return { ...k, s, x: at(), y: at() };
      });
      if (!problem(rules, shapes)) return shapes;
    }
  }
}

/**
 * The scene a caption describes ("a small red circle left of a big blue square"), placed plainly: the two shapes'
 * centres a third of the picture either side of its middle along the relation's axis. Throws naming what it cannot
 * read.
 */
export function sceneOfWords(rules, text) {
  const w = text.trim().toLowerCase().replace(/\s+/g, " ").split(" ");
  const rel = w.length === 10 ? `${w[4]} ${w[5]}` : w[4];
  const second = w.length === 10 ? w.slice(6) : w.slice(5);
  const first = w.slice(0, 4);
  const kind = (ws) => {
    const [art, size, colour, shape] = ws;
    if (art !== "a" || !(size in rules.sizes) || !(colour in rules.colours) || !rules.shapes.includes(shape)) return null;
    return { shape, size, colour, s: sideFor(rules, size) };
  };
  const [a, b] = [kind(first), kind(second)];
  if (!a || !b || !RELATION.test(rel ?? "") || second.length !== 4) {
    throw new Error(`“${text}” is not a scene: write it as “a {small|big} {${Object.keys(rules.colours).join("|")}} {${rules.shapes.join("|")}} {left of|right of|above|below} a … …”`);
  }
  const mid = rules.size / 2;
  const off = rules.size / 4 + 1;
  const sign = rel === "left of" || rel === "above" ? -1 : 1;
  const along = rel === "left of" || rel === "right of" ? "x" : "y";
  const at = (sh, d) => {
    const c = { x: mid, y: mid };
    c[along] += d;
    return clamp(rules, { ...sh, x: c.x - sh.s / 2, y: c.y - sh.s / 2 });
  };
  return [at(a, sign * off), at(b, -sign * off)];
}

/**
 * The caption reply ({caption, beams, trace}: app/wire/caption.py) as the views read it: T words (what each step
 * writes, </s> last if the caption ended) and what each read; α_tj over the G grid cells (G = n × n, each cell_px
 * pixels of the picture a side); the decoder's h_t and gates; ‖∂L/∂h_t‖; the gradient reaching each cell, in total
 * (L) and per word (L_t); the top-5 next words; each word's loss.
 */
export function readTrace(reply, picture) {
  const tr = reply.trace;
  const layer = tr.layers[0];
  const grad = tr.grad_norms.hidden[0];
  return {
    T: tr.steps,
    tokens: tr.words, // what the player's readout names at each step
    gradFrom: 0, // the whole trace arrives at once
    gradLogRange: () => logRange(grad),
    picture, // ImageData of what was sent (the page's or the upload's, as the browser decoded it), or null
    words: tr.words,
    inputs: tr.inputs,
    caption: reply.caption,
    finished: tr.finished,
    n: tr.grid_size,
    G: tr.cells,
    cellPx: tr.cell_pixels,
    attention: tr.attention,
    h: layer.hidden,
    gates: layer.gates,
    gateNames: tr.gates,
    grad,
    gradGrid: tr.grad_norms.grid,
    gridWords: tr.grad_norms.grid_words,
    predictions: tr.predictions,
    loss: tr.loss,
    totalLoss: tr.total_loss,
    beams: reply.beams.map((b) => ({ text: b.caption, logProb: b.score, finished: b.finished })),
    H: tr.hidden_size,
    cell: tr.cell,
  };
}

/** [lo, hi] of log10 of the positive values (the ‖∂L/∂h_t‖ legend's ends). */
export function logRange(values) {
  const logs = values.filter((v) => v > 0).map(Math.log10);
  return logs.length ? [Math.min(...logs), Math.max(...logs)] : [0, 0];
}

/** A picture file's pixels at the rules' size (for the attention view; the server reads the file itself). */
export async function pictureOf(blob, size) {
  try {
    const bitmap = await createImageBitmap(blob);
    const c = document.createElement("canvas");
    c.width = c.height = size;
    const ctx = c.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, size, size);
    const k = size / Math.max(bitmap.width, bitmap.height); // centred on white, as the server reads it
    const [w, h] = [bitmap.width * k, bitmap.height * k];
    ctx.drawImage(bitmap, (size - w) / 2, (size - h) / 2, w, h);
    return ctx.getImageData(0, 0, size, size);
  } catch {
    return null; // the server says what is wrong with it
  }
}

/** A scene as a link's words: "circle.small.red.12.9.26~triangle.big.blue.22.38.21" (shape, size, colour, s, x, y). */
export const sceneParam = (shapes) => shapes.map((sh) => [sh.shape, sh.size, sh.colour, sh.s, sh.x, sh.y].join(".")).join("~");

/** A link's scene, checked against the rules (null: not a scene this page draws). */
export function sceneFromParam(rules, text) {
  const shapes = String(text ?? "").split("~").map((part) => {
    const [shape, size, colour, ...nums] = part.split(".");
    const [s, x, y] = nums.map(Number);
    const sizes = rules.sizes[size];
    const ok = rules.shapes.includes(shape) && sizes && colour in rules.colours && nums.length === 3 && nums.every((v) => /^\d+$/.test(v)) && s >= sizes[0] && s <= sizes[1];
    return ok ? clamp(rules, { shape, size, colour, s, x, y }) : null;
  });
  return shapes.length >= 1 && shapes.every(Boolean) ? shapes : null;
}

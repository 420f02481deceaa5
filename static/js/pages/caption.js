// The caption page: a caption model looking at a picture. The picture is a scene drawn here (the editor: two shapes
// placed, moved, recoloured, resized and reshaped with the mouse, a finger or the keys, painted by the training's
// rules) or an uploaded PNG or JPEG; it goes to POST /api/models/{id}/caption and nowhere else, again at every
// change (debounced; an answer to an older picture is dropped). The trace comes back and the panels (panels.js:
// picture, captionWords, decoder, regions, captionBeams) follow one time cursor over the words.

import { caption, captionScenes } from "../api.js";
import { bus } from "../bus.js";
import { clamp, paint, pictureOf, pngOf, problem, randomScene, readTrace, ruleCaption, sceneFromParam, sceneOfWords, sceneParam, sideFor } from "../caption.js";
import { ACCENT } from "../colors.js";
import { clearInputError, reportRunError, showInputError } from "../inputerror.js";
import { bindKeys, onKeysIn } from "../keys.js";
import { mountMediaPage } from "../mediapage.js";
import { exposePage, loadCard } from "../pagekit.js";
import { readParams, writeParams } from "../url.js";
import { bigSide } from "../views/caption.js";

const $ = (id) => document.getElementById(id);
const modelId = document.body.dataset.model;
const perf = window.__unrolled;
const BEAM = 3; // the page's beam width: a few candidates to show
const DEBOUNCE_MS = 120; // a drag sends the picture it rests on, not every pixel of the way

const P = readParams({
  scene: { default: "" }, // the drawn scene (caption.js sceneParam): a link shows the scene it was made on
  step: { type: "int", default: 0 },
  phase: { default: "forward", values: ["forward", "backward"] },
});

const state = { trace: null, cursor: null, run: 0, card: null, rules: null, examples: [], unit: 0, layer: 0 };
const { player, push } = mountMediaPage(state, { speed: 2 });

/**
 * The scene editor: the picture drawn big on a canvas, the selected shape outlined. Pointer events (a mouse, a pen,
 * a finger): press on a shape to pick and drag it, elsewhere to place the picked one there. Keys while it has focus
 * (Tab, arrows, C, S, Z): onKeysIn below. onChange(shapes) after every change.
 */
class SceneEditor {
  constructor(root, onChange) {
    this.onChange = onChange;
    this.rules = null;
    this.shapes = [];
    this.selected = 0;
    this.c = document.createElement("canvas");
    this.c.className = "scene-canvas";
    this.c.tabIndex = 0;
    this.c.setAttribute("role", "application");
    this.c.setAttribute("aria-label", "Scene editor: Tab picks a shape, arrows move it, C recolours, S reshapes, Z resizes");
    root.append(this.c);
    this.drag = null;
    this.c.addEventListener("pointerdown", (e) => this.down(e));
    this.c.addEventListener("pointermove", (e) => this.move(e));
    for (const type of ["pointerup", "pointercancel"]) this.c.addEventListener(type, () => (this.drag = null));
    this.c.addEventListener("focus", () => this.draw());
    this.c.addEventListener("blur", () => this.draw());
  }

  set(rules, shapes) {
    this.rules = rules;
    this.shapes = shapes.map((sh) => clamp(rules, sh));
    this.selected = Math.min(this.selected, this.shapes.length - 1);
    this.changed();
  }

  changed() {
    this.draw();
    this.onChange(this.shapes);
  }

  side() {
    const room = Math.max(160, this.c.parentElement.clientWidth || 300);
    return Math.min(room, bigSide());
  }

  draw() {
    if (!this.rules) return;
    const n = this.rules.size;
    const side = this.side();
    const dpr = window.devicePixelRatio || 1;
    this.c.width = this.c.height = Math.round(side * dpr);
    this.c.style.width = this.c.style.height = `${side}px`;
    const small = document.createElement("canvas");
    small.width = small.height = n;
    small.getContext("2d").putImageData(paint(this.rules, this.shapes), 0, 0);
    const ctx = this.c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(small, 0, 0, side, side);
    const sh = this.shapes[this.selected];
    if (sh) {
      const k = side / n;
      ctx.strokeStyle = ACCENT;
      ctx.lineWidth = 2;
      ctx.setLineDash(document.activeElement === this.c ? [] : [6, 4]);
      ctx.strokeRect(sh.x * k - 3, sh.y * k - 3, sh.s * k + 6, sh.s * k + 6);
    }
    this.c.classList.toggle("focused", document.activeElement === this.c);
  }

  /** The picture's pixel under a pointer event. */
  at(e) {
    const r = this.c.getBoundingClientRect();
    const k = this.rules.size / r.width;
    return [(e.clientX - r.left) * k, (e.clientY - r.top) * k];
  }

  down(e) {
    if (!this.rules) return;
    e.preventDefault();
    this.c.focus();
    const [x, y] = this.at(e);
    const hit = this.shapes.findLastIndex((sh) => x >= sh.x && x < sh.x + sh.s && y >= sh.y && y < sh.y + sh.s);
    if (hit >= 0) this.selected = hit;
    const sh = this.shapes[this.selected];
    if (hit < 0) this.put({ ...sh, x: x - sh.s / 2, y: y - sh.s / 2 }); // placed where pressed
    const now = this.shapes[this.selected];
    this.drag = { dx: x - now.x, dy: y - now.y };
    this.c.setPointerCapture(e.pointerId);
    if (hit >= 0) this.draw();
  }

  move(e) {
    if (!this.drag) return;
    const [x, y] = this.at(e);
    const sh = this.shapes[this.selected];
    const next = clamp(this.rules, { ...sh, x: x - this.drag.dx, y: y - this.drag.dy });
    if (next.x !== sh.x || next.y !== sh.y) this.put(next);
  }

  /** The selected shape replaced (kept inside the picture). */
  put(sh) {
    this.shapes[this.selected] = clamp(this.rules, sh);
    this.changed();
  }

  pick(d) {
    this.selected = (this.selected + d + this.shapes.length) % this.shapes.length;
    this.draw();
    describe(this.shapes);
    perf.selected = this.selected;
  }

  nudge(dx, dy) {
    const sh = this.shapes[this.selected];
    this.put({ ...sh, x: sh.x + dx, y: sh.y + dy });
  }

  /** The selected shape's colour, shape or size word, to the next in the rules' order. */
  cycle(what) {
    const sh = this.shapes[this.selected];
    const list = what === "colour" ? Object.keys(this.rules.colours) : what === "shape" ? this.rules.shapes : Object.keys(this.rules.sizes);
    const next = list[(list.indexOf(sh[what]) + 1) % list.length];
    if (what !== "size") return this.put({ ...sh, [what]: next });
    const s = sideFor(this.rules, next);
    this.put({ ...sh, size: next, s, x: sh.x + (sh.s - s) / 2, y: sh.y + (sh.s - s) / 2 }); // about its centre
  }
}

const editor = new SceneEditor($("editor"), (shapes) => drawn(shapes));
bus.on("layout", () => editor.draw()); // presenter mode, the window's size

/** What the scene's rules say of the drawn scene, under the editor. */
function describe(shapes) {
  const rules = state.rules;
  const own = ruleCaption(rules, shapes);
  const wrong = problem(rules, shapes);
  const info = $("editor-info");
  const parts = shapes.map((sh, i) => `${i === editor.selected ? "▸ " : ""}${sh.size} ${sh.colour} ${sh.shape} (${sh.s} px at ${sh.x}, ${sh.y})`);
  info.textContent = `${parts.join(" · ")} — by the rules: “${own}”${wrong ? ` (but ${wrong})` : ""}`;
  info.classList.toggle("wrong", Boolean(wrong));
  info.dataset.rules = own ?? "";
}

let timer = null;
// A drawn scene not yet sent (its debounce running, or its PNG being made). While it waits, an answer to the scene
// sent before it is not the page's last word: the page stays pending, so nothing (a test, the room) takes that
// caption as the caption of the scene on screen.
let unsent = false;

/** The drawn scene changed: described now, captioned once it rests for DEBOUNCE_MS. */
function drawn(shapes) {
  describe(shapes);
  perf.scene = shapes.map((sh) => ({ ...sh }));
  writeParams({ scene: sceneParam(shapes) });
  clearTimeout(timer);
  const copy = shapes.map((sh) => ({ ...sh }));
  unsent = true;
  perf.pending = true;
  timer = setTimeout(async () => {
    const png = await pngOf(state.rules, copy);
    if (perf.scene && sceneParam(perf.scene) !== sceneParam(copy)) return; // redrawn meanwhile: its own timer sends it
    unsent = false;
    run(png, paint(state.rules, copy), "your scene");
  }, DEBOUNCE_MS);
}

/** Caption a picture (a Blob: PNG or JPEG): the trace drawn; the cursor stays on its word if it can. */
async function run(image, picture, source) {
  const run = ++state.run;
  perf.pending = true;
  perf.sent = { bytes: image.size, type: image.type, source, run };
  $("source").textContent = source;
  let reply;
  try {
    reply = await caption(modelId, image, BEAM);
  } catch (e) {
    if (run !== state.run) return;
    reportRunError(e);
    perf.failed = (perf.failed ?? 0) + 1;
    perf.pending = unsent;
    return;
  }
  if (run !== state.run) return; // an answer to an older picture: the newer one's is coming
  clearInputError();
  const trace = readTrace(reply, picture);
  const before = state.trace;
  state.trace = trace;
  showCaption(trace.caption);
  const t = P.step ? P.step - 1 : before ? Math.min(state.cursor?.t ?? trace.T - 1, trace.T - 1) : trace.T - 1;
  player.reset(trace.T, { phase: P.step ? P.phase : (state.cursor?.phase ?? "forward"), t });
  P.step = 0;
  push({ trace });
  player.setAvailable(trace.T, 0, trace.T);
  perf.caption = trace.caption;
  perf.captionRun = run;
  perf.loaded = (perf.loaded ?? 0) + 1;
  perf.pending = unsent;
}

function showCaption(text) {
  const el = $("caption");
  const label = document.createElement("span");
  label.className = "caption-label";
  label.textContent = "it writes:";
  const words = document.createElement("span");
  words.className = "caption-text";
  words.id = "caption-text";
  words.textContent = text || "(nothing)";
  el.replaceChildren(label, " ", words);
  el.dataset.text = text;
}

// ---- the inputs ----

function useExample(i) {
  const ex = state.examples[i];
  if (!ex) return;
  $("examples").dataset.current = String(i);
  try {
    editor.set(state.rules, sceneOfWords(state.rules, ex.text));
  } catch (e) {
    showInputError(e.message);
  }
}

function nextExample() {
  if (!state.examples.length) return;
  useExample((Number($("examples").dataset.current ?? -1) + 1) % state.examples.length);
}

const randomise = () => state.rules && editor.set(state.rules, randomScene(state.rules));

/** An uploaded file, sent as the image type it claims (by its type, else its name's ending): the server reads it. */
async function upload(file) {
  const type = ["image/png", "image/jpeg"].includes(file.type) ? file.type : /\.jpe?g$/i.test(file.name) ? "image/jpeg" : "image/png";
  const image = new Blob([await file.arrayBuffer()], { type });
  clearTimeout(timer);
  writeParams({ scene: null }); // an upload is not in the link
  run(image, await pictureOf(image, state.rules?.size ?? 64), `upload: ${file.name}`);
}

$("random").addEventListener("click", () => randomise());
$("upload").addEventListener("change", () => {
  const file = $("upload").files?.[0];
  $("upload").value = "";
  if (file) upload(file);
});
$("examples").addEventListener("change", () => {
  const i = $("examples").value;
  $("examples").value = "";
  if (i !== "") useExample(Number(i));
});

bindKeys(player, {
  input: editor.c,
  words: { "/": "draw: the scene editor takes the keys (Esc gives them back)" },
  more: [
    { keys: ["r"], does: "a random scene, by the training's rules", act: () => randomise() },
    { keys: ["u"], does: "upload a PNG or JPEG to caption", act: () => $("upload").click() },
    { keys: ["e"], does: "the next example scene", act: () => nextExample() },
  ],
});

onKeysIn(editor.c, "the scene editor", [
  { keys: ["Tab", "Shift+Tab"], does: "the next / previous shape", act: (e) => editor.pick(e.shiftKey ? -1 : 1) },
  { keys: ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"], does: "move the shape 1 px (with Shift 4 px)", act: (e) => arrow(e, 1) },
  { keys: ["Shift+ArrowLeft", "Shift+ArrowRight", "Shift+ArrowUp", "Shift+ArrowDown"], act: (e) => arrow(e, 4) },
  { keys: ["c"], does: "its colour: red, green, blue, yellow", act: () => editor.cycle("colour") },
  { keys: ["s"], does: "its shape: circle, square, triangle", act: () => editor.cycle("shape") },
  { keys: ["z"], does: "its size: small or big", act: () => editor.cycle("size") },
  { keys: ["Escape"], does: "leave the editor", act: () => editor.c.blur() },
]);

function arrow(e, px) {
  const [dx, dy] = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[e.key];
  editor.nudge(dx * px, dy * px);
}

async function main() {
  state.card = await loadCard(modelId);
  if (!state.card) return;
  try {
    state.rules = await captionScenes();
  } catch (e) {
    reportRunError(e);
    return;
  }
  state.examples = (state.card.examples ?? []).filter((ex) => {
    try {
      sceneOfWords(state.rules, ex.text);
      return true;
    } catch {
      return false;
    }
  });
  state.examples.forEach((ex, i) => {
    const o = new Option(ex.text, String(i));
    o.title = ex.note ?? "";
    $("examples").append(o);
  });
  const linked = P.scene ? sceneFromParam(state.rules, P.scene) : null;
  if (P.scene && !linked) bus.emit("status", { kind: "error", message: `The link's scene “${P.scene}” is not one this page draws: an example instead.` });
  if (linked) editor.set(state.rules, linked);
  else if (state.examples.length) useExample(0);
  else randomise();
}

exposePage("caption");
main();

// The one panel registry: every panel a model's page or a tour scene shows, declared once — its title, how much
// room it takes on a stage, whether it has a line of readout under it, and how it is made (which view, with which
// options). Pages and talk mode's stages build their panels from here, so a panel is added by its view, one
// entry below and its place in a page's template (or a tour scene's list).
//
// make(p, at) returns the view fed with the stage's updates (or null): p is the panel's parts {section, body,
// tools, info, legend}; `at` is where it is made: {card, cards, scene, on: "page" | "tour", stage} and what the
// stage shows: `writing` (a model generating) or `checkpoint` (a model at a checkpoint of its training). A family
// with panels of its own under the same keys (an encoder–decoder's unrolled rows, its top-k) names them in
// FAMILY_PANELS: the scene asks for "unrolled", the registry gives the encoder–decoder's.

import { node } from "./dom.js";
import { exportButtons } from "./export.js";
import { familyOf, fills } from "./families.js";
import { CertaintyView, SeriesView, WeightShareView } from "./tour-plots.js";
import { MelodyGuest, SeriesGuest, soundButton } from "./tour-sequences.js";
import { AttentionView } from "./views/attention.js";
import { BeamsView } from "./views/beams.js";
import { AttentionPictureView, CaptionBeamsView, CaptionWordsView, DecoderView, RegionsView } from "./views/caption.js";
import { CellDiagramView } from "./views/celldiagram.js";
import { CellStepView } from "./views/cellstep.js";
import { CompareRowsView } from "./views/comparerows.js";
import { EncDecView } from "./views/encdec.js";
import { EncDecGradView } from "./views/encdecgrad.js";
import { GenOutputView } from "./views/genoutput.js";
import { GradCompareView } from "./views/gradcompare.js";
import { GradientView } from "./views/gradients.js";
import { GATE_SERIES, STATE_SERIES, TimeHeatmap } from "./views/heatmap.js";
import { LossView } from "./views/loss.js";
import { PcaView } from "./views/pca.js";
import { PianoRollView } from "./views/pianoroll.js";
import { PredictionsView } from "./views/predictions.js";
import { ClassProbsView, FramesView } from "./views/seriesclass.js";
import { InputGradView, SeriesPlotView } from "./views/seriesplot.js";
import { CollapseView, CtcBeamsView, CtcSweepView, ListeningView, PosteriorView, SoundView } from "./views/speech.js";
import { TextView } from "./views/text.js";
import { TopKView } from "./views/topk.js";
import { UnrolledView } from "./views/unrolled.js";

export { node }; // the stages build their own sections with it

const tour = (at) => at.on === "tour";
/** A plot's name (its exported file's): the page's, prefixed "tour-" in talk mode (or talk mode's own). */
const named = (at, page, talk = page) => ({ name: tour(at) ? `tour-${talk}` : page });
/** What one step is in a page's titles: "note" for a melody model, else "step". */
const stepWord = (at) => (tour(at) ? null : familyOf(at.card).step);

/** The table under ‖∂L/∂h_t‖: the fall from the loss to the first step, per cell. */
export function ratioTable() {
  const table = node("table", "ratio-table");
  const head = table.createTHead().insertRow();
  for (const h of ["cell", "‖∂L/∂h_1‖", "‖∂L/∂h‖ at the loss", "first ÷ last", "orders of magnitude lost"]) head.append(node("th", "", h));
  table.createTBody();
  return table;
}

/** An unrolled network, with its PNG / SVG buttons where its panel has tools. */
function unrolledPanel(p, at, name) {
  const v = new UnrolledView(p.body, name);
  if (p.tools) exportButtons(p.tools, () => v.exportPng(), () => v.exportSvg());
  return v;
}

/**
 * key → {title(at), size: "half" | "full", info, resizes, make(p, at)}. `size` is the room on a stage: half-width
 * panels pair up in the order given. `resizes`: its view redraws its own layout on a zoom (the unrolled networks).
 */
export const PANELS = {
  unrolled: {
    title: (at) => (tour(at) && at.writing ? "The unrolled network feeds itself" : "The unrolled network"),
    size: "full",
    resizes: true,
    make: (p, at) => unrolledPanel(p, at, at.writing ? named(at, "unrolled-generation") : named(at, "unrolled-network", "unrolled")),
  },
  text: {
    title: (at) => (at.checkpoint ? "The input, read at this checkpoint" : "The text, coloured by one unit"),
    size: "full",
    make(p, at) {
      const strip = node("div", "strip");
      const host = node("div");
      if (!tour(at)) [strip.id, host.id] = ["unit-strip", "text-view"]; // the page's: its links and tests name them
      p.body.append(strip, host);
      return new TextView(host, { strip });
    },
  },
  predictions: {
    title(at) {
      if (at.writing) return "What it samples from";
      if (familyOf(at.card).head === "classes") return tour(at) ? "p(class), word by word" : "Class probabilities";
      return stepWord(at) ? `What ${stepWord(at)} comes next?` : "What comes next?";
    },
    size: "half",
    make: (p, at) => new PredictionsView(p.body, { tools: p.tools, ...(at.writing ? named(at, "sampled-from") : named(at, "predictions")) }),
  },
  states: {
    title(at) {
      const lstm = at.card.cell === "lstm";
      if (tour(at) && !at.writing) return lstm ? "Hidden state h_t and cell state c_t, units × time" : "Hidden state h_t, units × time";
      if (at.checkpoint) return `Hidden state${lstm ? " and cell state" : ""} at this checkpoint`;
      return `Hidden state${lstm && !tour(at) ? " and cell state" : ""}, units × ${stepWord(at) ? `${stepWord(at)}s` : "time"}`;
    },
    size: "half",
    info: true,
    make: (p, at) => new TimeHeatmap(p.body, { series: STATE_SERIES, info: p.info, ...named(at, `hidden-state${at.writing ? "-generation" : at.checkpoint ? "-at-checkpoint" : ""}`) }),
  },
  cell: {
    title(at) {
      if (tour(at)) return at.card.cell === "rnn" ? "The cell at this step: h_t, unit by unit" : "The gates at this step";
      return `${at.card.cell === "rnn" ? "The cell" : "Gates"} at this ${stepWord(at) ?? "step"}`;
    },
    size: "half",
    info: true,
    make: (p, at) => new CellStepView(p.body, { tools: p.tools, readout: p.info, ...named(at, "cell-at-step") }),
  },
  // The cell drawn at the cursor, lit by its gates (the BPTT sweep: by the gradient); in a compare scene, its first
  // two cells side by side (update({traces})).
  diagram: {
    title: (at) => (at.compared ? "One step of each cell, drawn" : `The cell, drawn, at this ${stepWord(at) ?? "step"}`),
    size: "full", // a compare scene's two whole drawings side by side need the stage's width
    make: (p, at) => new CellDiagramView(p.body, { tools: p.tools, ...named(at, at.compared ? "cells-drawn" : "cell-drawn") }),
  },
  gates: {
    title: () => "Each gate over time",
    size: "half",
    info: true,
    make(p, at) {
      if (at.card.cell !== "rnn") return new TimeHeatmap(p.body, { series: GATE_SERIES, info: p.info, ...named(at, "gates-over-time", "gates") });
      p.body.append(node("p", "caption", "A plain RNN has no gates: h_t = tanh(W_xh x_t + W_hh h_{t−1} + b)."));
      return null;
    },
  },
  gradients: {
    title(at) {
      if (at.writing) return "Gradient norms, BPTT over the written text";
      return at.checkpoint ? "Gradient norms at this checkpoint" : `Gradient norms, BPTT${tour(at) ? " (log scale)" : ""}`;
    },
    size: "half",
    info: true,
    make: (p, at) => new GradientView(p.body, { readout: p.info, ...named(at, `gradient-norms${at.writing ? "-generation" : at.checkpoint ? "-at-checkpoint" : ""}`) }),
  },
  loss: {
    title: () => "The loss at each step",
    size: "half",
    info: true,
    make: (p, at) => new LossView(p.body, { readout: p.info, ...named(at, "loss-per-step") }),
  },
  norms: {
    title: () => "‖∂L/∂h_t‖ as BPTT carries the error back (log scale)",
    size: "full",
    make(p) {
      const table = ratioTable();
      const v = new GradCompareView(p.body, { table, name: "tour-gradient-h", talkHeight: 185 });
      p.section.append(table);
      return { update: (d) => v.update({ ...d, ...(d.trace ? { traces: [d.trace] } : {}) }) };
    },
  },
  // Several models on one input (the compare page, a compare scene): at.cards, a trace each (update({traces})).
  compareNorms: {
    title: (at) => (tour(at) ? "‖∂L/∂h_t‖ of each cell, one log axis" : "The vanishing gradient: ‖∂L/∂h_t‖ of the first layer, one log axis"),
    size: "full",
    make(p, at) {
      const table = ratioTable();
      if (!tour(at)) table.id = "ratios"; // the page's: its tests name it
      const v = new GradCompareView(p.body, { table, ...(tour(at) ? { name: "tour-gradients-compared", talkHeight: 270 } : {}) });
      p.section.append(table);
      return v;
    },
  },
  compareCells: {
    title: () => "The same input through each cell",
    size: "full",
    make: (p, at) => new CompareRowsView(p.body, { cards: at.cards, page: !tour(at), name: (id) => (tour(at) ? `tour-unrolled-${id}` : `unrolled-${id}`) }),
  },
  weights: {
    title: () => "Each step's share of the W_hh update",
    size: "half",
    info: true,
    make: (p) => new WeightShareView(p.body, { readout: p.info, name: "tour-weight-shares" }),
  },
  pca: {
    title: (at) => `The hidden-state trajectory${tour(at) ? " (PCA)" : ""}`,
    size: "half",
    info: true,
    make: (p, at) => new PcaView(p.body, { caption: p.info, ...named(at, "hidden-trajectory-pca", "pca") }),
  },
  series: {
    title: () => "Other sequences, read the same way",
    size: "full",
    make: (p, at) => new SeriesView(p.body, { series: at.scene.series, name: "tour-sequences" }),
  },
  // A melody model's roll on the cursor; in a scene of another model, a guest playing its own melody.
  roll: {
    title(at) {
      if (!fills(at.card, "roll")) return `A melody: ${guestOf(at, "roll").id}`;
      return `The melody, one note per step${tour(at) ? ` (${at.card.id})` : ""}`;
    },
    size: (at) => (fills(at.card, "roll") ? "full" : "half"),
    info: true,
    make(p, at) {
      if (!fills(at.card, "roll")) return at.stage.guests.push(new MelodyGuest(p, guestOf(at, "roll"))) && null;
      if (!tour(at)) return new PianoRollView(p.body, { height: 300, readout: p.info });
      at.stage.synth = soundButton(p.tools);
      return new PianoRollView(p.body, { height: 230, readout: p.info });
    },
  },
  // A series model's series, one-step predictions and forecast; in a scene of another model, a guest of its own.
  forecast: {
    title(at) {
      if (!fills(at.card, "forecast")) return `A series: ${guestOf(at, "forecast").id}`;
      return tour(at) ? `The series, predicted one step ahead, then forecast (${at.card.id})` : "The series, the model's one-step predictions and its forecast";
    },
    size: (at) => (fills(at.card, "forecast") ? "full" : "half"),
    info: true,
    make(p, at) {
      if (!fills(at.card, "forecast")) return at.stage.guests.push(new SeriesGuest(p, guestOf(at, "forecast"))) && null;
      const s = at.stage;
      return new SeriesPlotView(p.body, { first: () => s.first(), forecast: () => s.forecast, readout: p.info, ...(tour(at) ? { height: 250, name: "tour-series" } : {}) });
    },
  },
  // A series classifier's frames (features × frames) and its label probabilities after every frame.
  frames: {
    title: (at) => `The frames it reads: ${at.card.step ? `${at.card.step}s` : "steps"} of numbers`,
    size: "half",
    info: true,
    make: (p) => new FramesView(p.body, { readout: p.info }),
  },
  classprobs: {
    title: () => "p(label) after every frame",
    size: "half",
    info: true,
    make: (p) => new ClassProbsView(p.body, { readout: p.info }),
  },
  mattered: {
    title: (at) => `Which past ${at.card.step ? `${at.card.step}s` : tour(at) ? "years" : "steps"} mattered: ∂L/∂x_t`,
    size: "full",
    info: true,
    make: (p, at) => new InputGradView(p.body, { first: () => at.stage.first(), readout: p.info, ...(tour(at) ? { height: 200, name: "tour-input-gradient" } : {}) }),
  },
  certainty: {
    title: () => "p(the next letter), step by step",
    size: "full",
    make: (p, at) => (at.stage.certainty = new CertaintyView(p.body, { name: "tour-p-next" })),
  },
  output: {
    title: () => "The model writes",
    size: "half",
    info: true,
    make(p, at) {
      if (!tour(at)) return new GenOutputView(p.body, { info: p.info });
      at.stage.seedNote = node("span", "gen-seed");
      p.tools.append(at.stage.seedNote);
      const out = node("div", "gen-output");
      out.setAttribute("aria-live", "polite");
      p.body.append(out);
      return new GenOutputView(out, { info: p.info });
    },
  },
  // An encoder–decoder's own (FAMILY_PANELS.translate names them under a scene's keys).
  encdec: {
    title: () => "The encoder reads, the decoder writes",
    size: "full",
    make(p, at) {
      at.stage?.decorateEncDec?.(p);
      const v = new EncDecView(p.body, { legend: p.legend ?? null, ...named(at, "encoder-decoder") });
      exportButtons(p.tools, () => v.exportPng(), () => v.exportSvg());
      return v;
    },
  },
  attention: {
    title: (at) => `Attention${tour(at) ? " α" : ""}: where each letter looks`,
    size: "half",
    info: true,
    make: (p, at) => new AttentionView(p.body, { info: p.info, tools: tour(at) ? null : p.tools, ...named(at, "attention") }),
  },
  beams: {
    title: (at) => (tour(at) ? `Beam search (width ${at.scene.beam ?? 1}): score Σ log p` : "Beam search: the candidates"),
    size: "half",
    make(p, at) {
      if (!tour(at)) return new BeamsView(p.body);
      const list = node("ol", "beams");
      p.body.append(list);
      return new BeamsView(list);
    },
  },
  topk: {
    title: () => "The decoder's top 5 at this step",
    size: "half",
    make: (p) => new TopKView(p.body),
  },
  encdecGradients: {
    title: (at) => (tour(at) ? "BPTT: the decoder, then the encoder (log scale)" : "Gradient norms, BPTT: the decoder, then the encoder"),
    size: "half",
    info: true,
    make: (p, at) => new EncDecGradView(p.body, { readout: p.info, ...named(at, "encoder-decoder-gradients") }),
  },
  // A speech model's own (FAMILY_PANELS.transcribe names them under a scene's keys).
  sound: {
    title: () => "The sound, and the log-mel spectrogram the network hears",
    size: "full",
    info: true,
    make: (p) => new SoundView(p.body, { info: p.info }),
  },
  listening: {
    title: () => "The unrolled network over frames, around the cursor",
    size: "full",
    resizes: true,
    make: (p) => new ListeningView(p.body),
  },
  posteriors: {
    title: () => "CTC posteriors y_t(k) and the best alignment",
    size: "full",
    info: true,
    make: (p) => new PosteriorView(p.body, { info: p.info }),
  },
  collapse: {
    title: () => "The text, as the collapse rule reads the greedy path",
    size: "half",
    make: (p) => new CollapseView(p.body),
  },
  ctcBeams: {
    title: () => "Beam search over the posteriors",
    size: "half",
    make(p) {
      const list = node("ol", "beams");
      p.body.append(list);
      return new CtcBeamsView(list);
    },
  },
  ctcSweep: {
    title: () => "BPTT over the frames: ‖∂L/∂h_t‖ (log scale)",
    size: "full",
    info: true,
    make: (p) => new CtcSweepView(p.body, { readout: p.info }),
  },
  // A caption model's own (FAMILY_PANELS.caption names them under a scene's keys).
  picture: {
    title: () => "The picture, and where the decoder looks (attention α)",
    size: "half",
    info: true,
    make: (p) => new AttentionPictureView(p.body, { info: p.info }),
  },
  captionWords: {
    title: () => "The caption, written word by word",
    size: "full",
    make: (p) => new CaptionWordsView(p.body),
  },
  decoder: {
    title: () => "The decoder unrolled over the words",
    size: "full",
    resizes: true,
    make: (p) => new DecoderView(p.body),
  },
  regions: {
    title: () => "BPTT into the picture: the gradient reaching each region",
    size: "half",
    info: true,
    make: (p) => new RegionsView(p.body, { info: p.info }),
  },
  captionBeams: {
    title: () => "Beam search: the candidate captions",
    size: "half",
    make(p) {
      const list = node("ol", "beams");
      p.body.append(list);
      return new CaptionBeamsView(list);
    },
  },
};

/** The panels a family shows under the scene's keys (an encoder–decoder's unrolled network is its two rows). */
const FAMILY_PANELS = {
  translate: { unrolled: "encdec", predictions: "topk", gradients: "encdecGradients" },
  transcribe: { unrolled: "listening", beams: "ctcBeams", gradients: "ctcSweep", text: "collapse" },
  caption: { attention: "picture", text: "captionWords", unrolled: "decoder", gradients: "regions", beams: "captionBeams" },
};

/** A compare scene's keys: the compare page's panels. */
export const COMPARE_PANELS = { norms: "compareNorms", cells: "compareCells", diagram: "diagram" };

/** The card of the scene's other model that fills panel `key` itself (the sequences scene's melody or series). */
const guestOf = (at, key) => at.cards.find((c) => fills(c, key));

/** The registry's entry for the scene's key `key` on a model of `card`'s family (undefined: no such panel). */
export function panelFor(key, card) {
  return PANELS[FAMILY_PANELS[card?.kind]?.[key] ?? key];
}

/** Talk mode's new panel section: {section, body, tools, info}, its title in the head. */
export function panelSection(key, title, { info = false, size = "full" } = {}) {
  const section = node("section", `panel tour-panel size-${size}`);
  section.dataset.panel = key;
  const head = node("header", "panel-head");
  head.append(node("h2", "", title));
  const tools = node("span", "panel-tools");
  head.append(tools);
  const body = node("div", "panel-body");
  section.append(head, body);
  const out = { section, body, tools, info: null };
  if (info) {
    out.info = node("p", "info");
    section.append(out.info);
  }
  return out;
}

/** A panel of the registry, made on a stage: appended to `root`; returns {p, view, entry}. */
export function makePanel(root, key, at) {
  const entry = panelFor(key, at.card);
  if (!entry) throw new Error(`no ${key} panel for a ${at.card?.kind ?? "model"} (panels.js)`);
  const size = typeof entry.size === "function" ? entry.size(at) : entry.size;
  const p = panelSection(key, entry.title(at), { info: Boolean(entry.info), size: at.size ?? size });
  root.append(p.section);
  return { p, view: entry.make(p, at), entry };
}

/**
 * A page's panels: a page is a stage with chrome, its layout and captions in its template. Each element with
 * data-panel="key" gets its title from the registry (into its [data-panel-title], before what the template put there,
 * e.g. a bidirectional model's layer) and, where it has a [data-body], its view, made as the registry says;
 * [data-tools], [data-info] and .legend are the view's tools, readout and legend. Returns {key: view}.
 */
export function mountPage(at) {
  at = { on: "page", cards: [at.card], scene: {}, ...at };
  const views = {};
  for (const el of document.querySelectorAll("[data-panel]")) {
    const key = el.dataset.panel;
    const entry = panelFor(key, at.card);
    const own = (sel) => [...el.querySelectorAll(sel)].find((x) => x.closest("[data-panel]") === el) ?? null;
    own("[data-panel-title]")?.prepend(entry.title(at));
    const body = own("[data-body]");
    if (!body) continue;
    const view = entry.make({ section: el, body, tools: own("[data-tools]"), info: own("[data-info]"), legend: own(".legend") }, at);
    if (view) views[key] = view;
  }
  return views;
}

// A room (issue 27): the students of a lecture follow the presenter's tour on their own screens.
// The presenter's tour page opens one (Shift+S: a join code, its URL and a QR code, large on the projector) and
// publishes its state: scene, input, cursor and play. A student's page (/join/{code}) follows it, and may step away
// to explore and come back with one tap. A scene's question is answered on the students' screens (the presenter sees
// a bar per choice, Q reveals and plays the scene); students suggest inputs, which the presenter runs (I: the newest).
// One WebSocket per page: /api/rooms/{code}/live (app/web/routes/rooms.py has the protocol).

import { bus } from "./bus.js";
import { typing } from "./keys.js";

const perf = (window.__unrolled = window.__unrolled ?? {});
const NO_INPUT = new Set(["knobs", "train"]); // the lab's scenes read no input (app/tour/tours.py LAB_VIEWS)
const SEND_EVERY_MS = 50; // the presenter's state, at most this often (a drag of the cursor is many changes)
const PLAYING_SYNC_MS = 1000; // while playing, the step is sent this often (students play on their own clocks)

const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
};

const storageKey = (tour) => `unrolled-room:${tour.name}`;
const wsUrl = (code) => `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/rooms/${code}/live`;

/** One room connection: joins, passes frames to onFrame, and connects again (with jitter) when it drops. */
class Live {
  constructor(code, key, onFrame, onEnd) {
    Object.assign(this, { code, key, onFrame, onEnd, ws: null, closed: false, tries: 0 });
    this.connect();
  }

  connect() {
    const ws = (this.ws = new WebSocket(wsUrl(this.code)));
    ws.onopen = () => ws.send(JSON.stringify(this.key ? { type: "join", key: this.key } : { type: "join" }));
    ws.onmessage = (e) => {
      this.tries = 0;
      this.onFrame(JSON.parse(e.data));
    };
    ws.onclose = (e) => {
      perf.room = { ...perf.room, connected: false };
      if (this.closed) return;
      if (e.code >= 4400 && e.code < 4500 && e.code !== 4408 && e.code !== 4429) {
        this.closed = true;
        this.onEnd(e.code, e.reason);
        return;
      }
      const wait = Math.min(10_000, 500 * 2 ** this.tries++) * (0.5 + Math.random());
      setTimeout(() => this.connect(), wait);
    };
  }

  send(frame) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  close() {
    this.closed = true;
    this.ws?.close();
  }
}

/** Bars of a question's votes: one per choice, its count and share. */
function bars(question, votes, { mine = null } = {}) {
  const counts = question.choices.map((_, k) => Number(votes?.[k] ?? 0));
  const total = counts.reduce((a, b) => a + b, 0);
  return el(
    "ol",
    { class: "room-bars" },
    ...question.choices.map((choice, k) =>
      el(
        "li",
        { class: `room-bar${mine === k ? " mine" : ""}`, "data-choice": k },
        el("span", { class: "room-bar-label" }, choice),
        el("span", { class: "room-bar-track" }, el("span", { class: "room-bar-fill", style: `width: ${total ? (100 * counts[k]) / total : 0}%` })),
        el("span", { class: "room-bar-count" }, String(counts[k])),
      ),
    ),
  );
}

/**
 * The room of a tour page. tourPage: {tour, player, now() → the page's state, follow(state), runSuggestion(text),
 * sceneAt(i), anchor (the element the room's panels go before)}. Returns hooks the page calls: changed() after a
 * scene or input changed, cursor() on every cursor change, ready() when a stage is ready, and keys for onKeys.
 */
export function openRoom(tourPage) {
  const data = document.body.dataset.room ? JSON.parse(document.body.dataset.room) : null;
  return data?.role === "student" ? student(tourPage, data.code) : presenter(tourPage);
}

function presenter(page) {
  const { tour, player } = page;
  const room = { live: null, code: null, key: null, joinUrl: null, state: null, votes: {}, queue: [], revealed: false, sent: null };
  perf.room = { role: "presenter", open: false };
  const panel = el("section", { class: "panel room-panel", id: "room-panel", hidden: "" });
  page.anchor.before(panel);
  const overlay = el("dialog", { class: "room-join", id: "room-join" });
  document.body.append(overlay);
  let timer = null;
  let lastSent = 0;

  const current = () => {
    const s = page.now();
    return { scene: s.scene, step: Math.max(0, player.t), phase: player.phase, playing: player.playing, speed: player.speed, inputs: s.inputs };
  };

  function send() {
    timer = null;
    if (!room.live) return;
    const state = current();
    const key = JSON.stringify(state);
    if (key === room.sent) return;
    room.sent = key;
    lastSent = performance.now();
    room.live.send({ type: "state", state });
    perf.room = { ...perf.room, sent: state };
  }

  function schedule(now = false) {
    if (!room.live || timer) return;
    const wait = now ? 0 : Math.max(0, SEND_EVERY_MS - (performance.now() - lastSent));
    timer = setTimeout(send, wait);
  }

  let last = null;
  function cursor() {
    if (!room.live) return;
    const s = current();
    const moved = !last || s.playing !== last.playing || s.speed !== last.speed || s.phase !== last.phase || (!s.playing && s.step !== last.step);
    const due = s.playing && performance.now() - lastSent > PLAYING_SYNC_MS;
    last = s;
    if (moved || due) schedule();
  }

  function render() {
    const scene = page.sceneAt(page.now().scene);
    const q = scene?.question;
    const items = room.queue;
    panel.hidden = !room.live || (!q && !items.length);
    if (panel.hidden) return bus.emit("layout", {});
    const parts = [];
    if (q) {
      const total = Object.values(room.votes).reduce((a, b) => a + Number(b), 0);
      parts.push(
        el("div", { class: "room-question" },
          el("h2", {}, q.text, el("span", { class: "room-count", id: "room-votes" }, ` ${total} ${total === 1 ? "answer" : "answers"}`)),
          bars(q, room.votes),
          room.revealed
            ? el("p", { class: "room-reveal" }, q.reveal)
            : el("p", { class: "room-hint" }, "Students answer on their screens; ", el("kbd", {}, "Q"), " reveals the answer and plays the scene."),
        ),
      );
    }
    if (items.length) {
      parts.push(
        el("div", { class: "room-queue" },
          el("h2", {}, "Suggested inputs ", el("span", { class: "room-hint" }, el("kbd", {}, "I"), " runs the newest; click one to run it")),
          el("ol", { id: "room-queue" },
            ...items.map((item) =>
              el("li", { class: "room-item" },
                el("button", { type: "button", class: "room-run", title: "Run this input", onclick: () => runItem(item) }, item.text),
                item.count > 1 ? el("span", { class: "room-times" }, `×${item.count}`) : "",
                el("button", { type: "button", class: "room-dismiss", title: "Dismiss", "aria-label": "Dismiss", onclick: () => room.live.send({ type: "dismiss", key: item.key }) }, "×"),
              ),
            ),
          ),
        ),
      );
    }
    panel.replaceChildren(...parts);
    bus.emit("layout", {});
  }

  function runItem(item) {
    room.live.send({ type: "take", key: item.key });
    room.queue = room.queue.filter((x) => x.key !== item.key);
    page.runSuggestion(item.text);
    render();
  }

  function onFrame(f) {
    if (f.type === "welcome") {
      room.code = f.code;
      room.votes = f.votes ?? {};
      room.queue = f.queue ?? [];
      room.revealed = Boolean(f.state?.revealed) && f.state.scene === page.now().scene;
      room.sent = null;
      perf.room = { ...perf.room, open: true, connected: true, code: f.code };
      schedule(true);
    } else if (f.type === "tally") {
      if (f.scene === page.now().scene) room.votes = f.votes;
    } else if (f.type === "queue") {
      if (f.scene === page.now().scene) room.queue = f.items;
    } else if (f.type === "reveal") {
      room.revealed = true;
      room.votes = f.votes;
    } else if (f.type === "closed") {
      end();
    }
    perf.room = { ...perf.room, votes: room.votes, queue: room.queue, revealed: room.revealed };
    render();
  }

  function end() {
    room.live?.close();
    room.live = null;
    sessionStorage.removeItem(storageKey(tour));
    perf.room = { role: "presenter", open: false };
    badge.hidden = true;
    render();
  }

  const badge = el("button", { type: "button", class: "tool room-badge", id: "room-badge", hidden: "", title: "The room's join code (Shift+S shows it large)", onclick: () => showJoin() });
  document.querySelector(".topbar-tools")?.prepend(badge);

  function connect(code, key, joinUrl) {
    Object.assign(room, { code, key, joinUrl });
    sessionStorage.setItem(storageKey(tour), JSON.stringify({ code, key, joinUrl }));
    badge.replaceChildren("Room ", el("b", {}, code));
    badge.hidden = false;
    room.live = new Live(code, key, onFrame, () => end());
  }

  function showJoin() {
    overlay.replaceChildren(
      el("div", { class: "room-join-text" },
        el("p", {}, "Follow on your phone or laptop:"),
        el("p", { class: "room-join-url", id: "room-join-url" }, room.joinUrl),
        el("p", {}, "or type ", el("b", {}, `${location.host}/join/`), " and the room's code:"),
        el("p", { class: "room-join-code", id: "room-join-code" }, room.code),
        el("form", { method: "dialog" }, el("button", { class: "btn" }, "Close (Esc)")),
      ),
      el("img", { class: "room-qr", id: "room-qr", src: `/api/rooms/${room.code}/qr.svg`, alt: `QR code of ${room.joinUrl}` }),
    );
    if (!overlay.open) overlay.showModal();
  }

  async function openOrShow() {
    if (overlay.open) return overlay.close();
    if (!room.live) {
      const r = await fetch("/api/rooms", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ tour: tour.name }) });
      const body = await r.json();
      if (!r.ok) return bus.emit("status", { kind: "error", message: `No room: ${body.message}` });
      connect(body.code, body.key, body.join_url);
    }
    showJoin();
  }

  function reveal() {
    const q = page.sceneAt(page.now().scene)?.question;
    if (!room.live || !q) return;
    room.live.send({ type: "reveal" });
    player.play(); // the model's own answer settles it
  }

  function runNewest() {
    if (room.live && room.queue.length) runItem(room.queue[0]);
  }

  const saved = JSON.parse(sessionStorage.getItem(storageKey(tour)) ?? "null");
  if (saved?.code && saved?.key) connect(saved.code, saved.key, saved.joinUrl);

  return {
    changed() {
      room.votes = {};
      room.queue = [];
      room.revealed = false;
      render();
      schedule();
    },
    inputChanged: () => schedule(),
    cursor,
    ready: () => schedule(),
    keys: [
      { keys: ["S"], show: ["Shift+S"], does: "open a room: students follow on their screens (the join code and QR code, large)", act: openOrShow },
      { keys: ["q"], does: "a room: reveal the scene's question and play the scene", act: reveal },
      { keys: ["i"], does: "a room: run the newest suggested input", act: runNewest },
    ],
  };
}

function student(page, code) {
  const { player } = page;
  const me = { state: null, following: true, voted: {}, revealed: null, votes: {}, applying: false };
  perf.room = { role: "student", code, connected: false, following: true, applied: 0 };
  document.body.classList.add("room-student");

  const status = el("span", { class: "room-status", id: "room-status" }, "Connecting…");
  const back = el("button", { type: "button", class: "btn btn-accent room-back", id: "room-back", hidden: "", onclick: () => snapBack() }, "Back to the presenter");
  const bar = el("div", { class: "room-bar-top", id: "room-bar" }, el("span", { class: "room-code" }, "Room ", el("b", {}, code)), status, back);
  document.querySelector(".topbar")?.after(bar); // under the top bar, above the input and the player
  const card = el("section", { class: "panel room-card", id: "room-card", hidden: "" });
  page.anchor.before(card);
  const note = el("p", { class: "room-note", id: "room-note", role: "status" });

  function setFollowing(on) {
    me.following = on;
    back.hidden = on;
    status.textContent = on ? "Following the presenter" : "Exploring on your own";
    perf.room = { ...perf.room, following: on };
  }

  function apply() {
    if (!me.state || !me.following) return;
    me.applying = true;
    try {
      page.follow(me.state);
    } finally {
      me.applying = false;
    }
    perf.room = { ...perf.room, applied: perf.room.applied + 1, at: me.state };
  }

  function snapBack() {
    setFollowing(true);
    apply();
    render();
  }

  // A student who uses the page steps away from the presenter: a key, a click on a control or a plot, an edit.
  // (A touch that scrolls is not a click, so reading down the page on a phone is not stepping away.)
  const mine = (e) => bar.contains(e.target) || card.contains(e.target);
  document.addEventListener("keydown", (e) => {
    if (!(mine(e) && typing(e.target)) && !e.ctrlKey && !e.metaKey && !e.altKey && !["Shift", "Tab", "Escape"].includes(e.key)) setFollowing(false);
  }, true);
  document.addEventListener("click", (e) => {
    if (!mine(e) && e.target.closest("a, button, input, textarea, select, .plot, svg, canvas, [tabindex]")) setFollowing(false);
  }, true);

  function render() {
    const s = me.state;
    if (!s) return (card.hidden = true);
    const scene = page.sceneAt(s.scene);
    const q = scene?.question;
    const parts = [];
    if (q) {
      const revealed = me.revealed === s.scene;
      const chosen = me.voted[s.scene];
      parts.push(el("h2", { class: "room-q" }, q.text));
      if (revealed) {
        parts.push(bars(q, me.votes, { mine: chosen ?? null }), el("p", { class: "room-reveal" }, q.reveal));
      } else {
        parts.push(
          el("div", { class: "room-choices" },
            ...q.choices.map((c, k) =>
              el("button", { type: "button", class: `btn room-choice${chosen === k ? " chosen" : ""}`, "data-choice": k, "aria-pressed": String(chosen === k), onclick: () => vote(s.scene, k) }, c),
            ),
          ),
        );
      }
    }
    if (scene && !NO_INPUT.has(scene.view) && !scene.problems?.length) {
      const field = el("input", { type: "text", id: "room-suggest-text", maxlength: "200", placeholder: "Suggest an input for this scene", "aria-label": "Suggest an input" });
      parts.push(
        el("form", { class: "room-suggest", id: "room-suggest", onsubmit: (e) => {
          e.preventDefault();
          const text = field.value.trim();
          if (!text) return;
          live.send({ type: "suggest", text });
          field.value = "";
          note.textContent = "Sent to the presenter.";
        } }, field, el("button", { class: "btn", type: "submit" }, "Suggest")),
      );
    }
    parts.push(note);
    card.replaceChildren(...parts);
    card.hidden = false;
    bus.emit("layout", {});
  }

  function vote(scene, choice) {
    me.voted[scene] = choice;
    live.send({ type: "vote", scene, choice });
    perf.room = { ...perf.room, voted: { ...me.voted } };
    render();
  }

  function onFrame(f) {
    if (f.type === "welcome" || f.type === "state") {
      const moved = me.state?.scene !== f.state.scene;
      me.state = f.state;
      if (f.state.revealed) {
        me.revealed = f.state.scene;
        if (f.votes) me.votes = f.votes;
      }
      perf.room = { ...perf.room, connected: true, state: f.state, received: (perf.room.received ?? 0) + 1 };
      if (f.type === "welcome") setFollowing(me.following);
      if (moved) note.textContent = "";
      apply();
      if (moved || f.type === "welcome") render();
    } else if (f.type === "reveal") {
      me.revealed = f.scene;
      me.votes = f.votes;
      perf.room = { ...perf.room, revealed: f.scene, votes: f.votes };
      render();
    } else if (f.type === "refused") {
      note.textContent = f.message;
    } else if (f.type === "closed") {
      status.textContent = "The presenter closed the room";
    }
  }

  const live = new Live(code, null, onFrame, (_, reason) => {
    status.textContent = reason === "not_found" ? "The room has closed" : `Left the room (${reason})`;
  });

  return {
    changed() {},
    inputChanged() {},
    cursor() {},
    ready: () => me.following && apply(), // the stage started its own way: put it where the presenter is
    keys: [],
    get applying() {
      return me.applying;
    },
  };
}

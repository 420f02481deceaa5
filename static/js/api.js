// All network I/O of the front end: the REST API and the WebSocket stream. Nothing else calls fetch.

import { bus } from "./bus.js";

export class ApiError extends Error {
  constructor(status, error, message) {
    super(message);
    this.status = status;
    this.error = error;
  }
}

// A busy answer (503, or a stream closed 4503 before its first frame) is asked again, up to BUSY_TRIES times, after
// busyDelay: the page says so meanwhile ("the room is busy, retrying"), and the note goes when an answer comes.
const BUSY_TRIES = 12;
export const BUSY_MESSAGE = "The room is busy, retrying…";

/**
 * Milliseconds before asking a busy server again: at least its Retry-After (seconds; 1 if it names none), plus a
 * random share of it that grows with the tries, so that a room of students refused together does not come back
 * together (jitter).
 */
export function busyDelay(retryAfter, attempt) {
  const base = 1000 * Math.max(1, Number(retryAfter) || 1);
  return base + Math.random() * base * Math.min(2 ** attempt, 8);
}

function busyWait(retryAfter, attempt) {
  bus.emit("status", { kind: "busy", message: BUSY_MESSAGE });
  return new Promise((resolve) => setTimeout(resolve, busyDelay(retryAfter, attempt)));
}

/** The busy note goes (only it: another message in the status line stays). */
const busyOver = () => bus.emit("status", { kind: "busy", message: "" });

async function request(path, options = {}) {
  for (let attempt = 0; ; attempt++) {
    let response;
    try {
      response = await fetch(path, { headers: { Accept: "application/json" }, ...options });
    } catch (e) {
      throw new ApiError(0, "offline", `the server did not answer (${e.message})`);
    }
    if (response.status === 503 && attempt < BUSY_TRIES) {
      await busyWait(response.headers.get("Retry-After"), attempt);
      continue;
    }
    if (attempt) busyOver();
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      throw new ApiError(response.status, body?.error ?? "http_error", body?.message ?? response.statusText);
    }
    return body;
  }
}

function post(path, body) {
  return request(path, {
    method: "POST",
    headers: { Accept: "application/json", "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

const modelPath = (id) => `/api/models/${encodeURIComponent(id)}`;

/** The cards a page carries (data-cards: its melody and series models), read once. */
let carried = null;
function carriedCard(id) {
  if (carried === null) {
    try {
      carried = JSON.parse(document.body?.dataset.cards ?? "{}");
    } catch {
      carried = {};
    }
  }
  return carried[id] ?? null;
}

/** A model's card: the one the page carries, else GET /api/models/{id}. */
export const getModel = (id) => {
  const card = carriedCard(id);
  return card ? Promise.resolve(card) : request(modelPath(id));
};
/** The whole trace in one body: {text, loss?, label?, top_k, checkpoint?, precision?}. */
export const trace = (id, body) => post(`${modelPath(id)}/trace`, body);
export const generate = (id, body) => post(`${modelPath(id)}/generate`, body);
/** A translation model: {text, beam, top_k, max_length?, prefix?, precision?} → {output, beams, trace}. */
export const translate = (id, body) => post(`${modelPath(id)}/translate`, body);
/** A speech model: the WAV file's bytes (an ArrayBuffer), `transcript` scored if given → {text, beams, trace}. */
export const transcribe = (id, wav, transcript = null) =>
  request(`${modelPath(id)}/transcribe${transcript ? `?transcript=${encodeURIComponent(transcript)}` : ""}`, {
    method: "POST",
    headers: { Accept: "application/json", "Content-Type": "audio/wav" },
    body: wav,
  });
/** A caption model: a PNG or JPEG file (a Blob, its type the Content-Type), `beam` wide → {caption, beams, trace}. */
export const caption = async (id, image, beam = 1) =>
  request(`${modelPath(id)}/caption?beam=${beam}`, {
    method: "POST",
    headers: { Accept: "application/json", "Content-Type": image.type },
    body: await image.arrayBuffer(), // its bytes, as transcribe sends a WAV's
  });
/** The rules the caption models' scenes are drawn by (sizes, colours, gaps, each shape's pixels). */
export const captionScenes = () => request("/api/caption-scenes");
/** The speech page's bundled clips: {examples: [{name, words, bytes}]}, and one clip's WAV bytes. */
export const speechExamples = () => request("/api/speech-examples");
export async function speechExample(name) {
  let response;
  try {
    response = await fetch(`/api/speech-examples/${encodeURIComponent(name)}`);
  } catch (e) {
    throw new ApiError(0, "offline", `the server did not answer (${e.message})`);
  }
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    throw new ApiError(response.status, body?.error ?? "http_error", body?.message ?? response.statusText);
  }
  return response.arrayBuffer();
}

// ---- uploads (issue 16): POST /api/models and DELETE /api/models/{id}, with the admin token ----

/**
 * Upload a model: `form` a FormData of weights, vocab, labels?, id, map*, level?, cell?, unk?; `token` the admin
 * token (sent as a bearer token, nowhere else). Resolves with {model, matched}; rejects with an ApiError carrying
 * the server's status and message. XMLHttpRequest rather than fetch: only it reports how much of the body was sent,
 * onProgress(sent, total), then onProgress(total, total) while the server checks the files.
 */
export function uploadModel(form, token, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/models");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.responseType = "text";
    xhr.upload.addEventListener("progress", (e) => onProgress(e.loaded, e.lengthComputable ? e.total : 0));
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body?.error ?? "http_error", body?.message ?? (xhr.statusText || `HTTP ${xhr.status}`)));
    });
    const offline = () => reject(new ApiError(0, "offline", "the server did not answer, or closed the connection before the upload was sent"));
    xhr.addEventListener("error", offline);
    xhr.addEventListener("abort", offline);
    xhr.send(form);
  });
}

/** Delete an uploaded model (the zoo's own are read-only: 403). Resolves with null (204). */
export const deleteModel = (id, token) =>
  request(modelPath(id), { method: "DELETE", headers: { Accept: "application/json", Authorization: `Bearer ${token}` } });

// ---- end of uploads ----

/** A WebSocket to this server's `path` that sends `body` once open. */
function openSocket(path, body) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${window.location.host}${path}`);
  ws.addEventListener("open", () => ws.send(JSON.stringify(body)));
  return ws;
}

/**
 * The `done` promise a run settles once: finish(resolveDone | rejectDone, value) settles it, later calls do
 * nothing; settled() says whether it has been.
 */
function settleOnce() {
  let isSettled = false;
  let resolveDone;
  let rejectDone;
  const done = new Promise((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  const finish = (fn, value) => {
    if (isSettled) return;
    isSettled = true;
    fn(value);
  };
  return { done, finish, resolveDone, rejectDone, settled: () => isSettled };
}

/** A WebSocket to `path` that sends `body` once open, and the `done` promise a run over it settles once. */
function socketRun(path, body) {
  return { ws: openSocket(path, body), ...settleOnce() };
}

/**
 * Open the stream for one request (a trace body, or {mode: "generate", …}) and hand every frame to onFrame.
 * Returns {done, close}: done resolves after the "done" frame and rejects with an ApiError on an error frame
 * or a connection that ends early. close() ends the stream (its done then resolves with {closed: true}).
 * A busy refusal (before any frame) opens the stream again after its retry_after, with jitter (busyDelay).
 */
export function stream(id, body, onFrame) {
  const { done, finish, resolveDone, rejectDone, settled } = settleOnce();
  let ws = null; // the socket of the current try
  let retry = null; // the timer of the next try
  const open = (attempt) => {
    const socket = openSocket(`${modelPath(id)}/stream`, body);
    socket.binaryType = "arraybuffer"; // {"encoding": "binary"}: step frames as float32 arrays
    ws = socket;
    socket.addEventListener("message", (event) => {
      if (settled() || socket !== ws) return;
      if (event.data instanceof ArrayBuffer) {
        onFrame({ type: "binary", buffer: event.data });
        return;
      }
      const frame = JSON.parse(event.data);
      if (Array.isArray(frame)) {
        frame.forEach(onFrame); // {"batch": n}: n step or grad frames to a message (meta, done, error travel alone)
        return;
      }
      if (frame.type === "error") {
        if (frame.error === "busy" && attempt < BUSY_TRIES) {
          ws = null; // this socket's close is not the run's end
          bus.emit("status", { kind: "busy", message: BUSY_MESSAGE });
          retry = setTimeout(() => settled() || open(attempt + 1), busyDelay(frame.retry_after, attempt));
          return;
        }
        finish(rejectDone, new ApiError(400, frame.error, frame.message));
        return;
      }
      if (frame.type === "meta" && attempt) busyOver();
      onFrame(frame);
      if (frame.type === "done") {
        finish(resolveDone, frame);
        socket.close(1000);
      }
    });
    socket.addEventListener("close", (event) => {
      if (socket !== ws) return;
      const status = event.code >= 4000 ? event.code - 4000 : 0;
      finish(rejectDone, new ApiError(status, event.reason || "closed", "the stream ended before it was done"));
    });
  };
  open(0);
  return {
    done,
    close() {
      finish(resolveDone, { closed: true });
      clearTimeout(retry);
      if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
    },
  };
}

// ---- the lab (/lab): the gradient knobs, the Jacobian, the one-token diff, live training ----

/** {cell, steps, hidden_size, radius, nonlinearity, forget_bias, clip, seed} → {grad_norms, bound, radius_measured, …}. */
export const labGradients = (body) => post("/api/lab/gradients", body);
/** {text, layer?, norm?} → {tokens, norms: [T][T]} (‖∂h_t/∂h_s‖, null above the diagonal). */
export const jacobian = (id, body) => post(`${modelPath(id)}/jacobian`, body);
/** {text, edited} → {tokens, edited_tokens, changed, state_change, cell_change, prediction_change}. */
export const diff = (id, body) => post(`${modelPath(id)}/diff`, body);

/**
 * A live training run: sends `body` ({task, n, cells, seconds}) and hands every frame to onFrame. Returns
 * {done, stop, close}: done resolves with the "done" frame and rejects with an ApiError (the error frame's, its
 * status from the close code 4000 + status, a busy one's retry_after as retryAfter) on an error or a connection
 * that ends early; stop() asks the server to stop (it still sends its done frame); close() leaves.
 */
export function labTrain(body, onFrame) {
  const { ws, done, finish, resolveDone, rejectDone, settled } = socketRun("/api/lab/train", body);
  let failure = null;
  ws.addEventListener("message", (event) => {
    if (settled() || typeof event.data !== "string") return;
    const frame = JSON.parse(event.data);
    if (frame.type === "error") {
      failure = frame; // its status arrives with the close code
      return;
    }
    onFrame(frame);
    if (frame.type === "done") finish(resolveDone, frame);
  });
  ws.addEventListener("close", (event) => {
    const status = event.code >= 4000 ? event.code - 4000 : 0;
    if (failure) finish(rejectDone, Object.assign(new ApiError(status, failure.error, failure.message), { retryAfter: failure.retry_after }));
    else finish(rejectDone, new ApiError(status, event.reason || "closed", "the training run ended before it was done"));
  });
  return {
    done,
    stop() {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "stop" }));
    },
    close() {
      finish(resolveDone, { closed: true });
      if (ws.readyState <= WebSocket.OPEN) ws.close(1000);
    },
  };
}
/** The run recorded on the server (`unrolled lab-record`): {recorded, start, columns, rows, done}. */
export const labRecording = () => request("/api/lab/recording");
// ---- end of the lab ----

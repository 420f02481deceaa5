// Uploading and deleting models, for whoever holds the admin token: the /upload page's form and the Delete button
// of an uploaded model's page. The token is kept for this tab only (sessionStorage), never in the URL or
// localStorage, and sent only as a bearer token (api.js). Every refusal shows the server's own message.

import { ApiError, deleteModel, uploadModel } from "./api.js";

const TOKEN_KEY = "unrolled.admin-token";
const $ = (id) => document.getElementById(id);
const perf = (window.__unrolled = window.__unrolled ?? {}); // what the tests read: the model uploaded or deleted

/** The admin token this tab was given, or "". */
export function savedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return ""; // storage refused (a privacy setting): the field is simply empty
  }
}

function saveToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // not kept: asked again next time
  }
}

const megabytes = (n) => `${(n / 1e6).toFixed(n < 1e7 ? 2 : 1)} MB`;

/** The server's refusal as the page shows it: its status and its own message. */
function refusal(e) {
  if (!(e instanceof ApiError)) return `Failed: ${e.message}`;
  return e.status ? `${e.status}: ${e.message}` : e.message;
}

function show(el, text, kind) {
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = !text;
  if (text) el.scrollIntoView({ block: "nearest" });
}

/** The fields of the form as POST /api/models takes them: files, id, map (one FROM=TO per line), the options and a
 * series model's description; a field left empty is not sent (the server infers it, or asks for it by name). */
function formData(form) {
  const data = new FormData();
  for (const name of ["weights", "vocab", "labels"]) {
    const file = form.elements[name].files[0];
    if (file) data.append(name, file, file.name);
  }
  data.append("id", form.elements.id.value.trim());
  for (const line of form.elements.map.value.split("\n")) if (line.trim()) data.append("map", line.trim());
  for (const name of ["cell", "level", "unk", "features", "mean", "std", "units", "step"]) {
    const value = form.elements[name].value.trim();
    if (value) data.append(name, value);
  }
  return data;
}

/** The /upload page's form: sends the files with the token, shows the progress, then the model's link or the refusal. */
export function bindUploadForm(form) {
  const token = $("upload-token"); // a field with no name: only this script reads it
  const progress = $("upload-progress");
  const status = $("upload-status");
  const message = $("upload-message");
  const result = $("upload-result");
  const submit = $("upload-submit");
  token.value = savedToken();
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!form.reportValidity()) return;
    saveToken(token.value);
    const data = formData(form);
    show(message, "", "");
    result.hidden = true;
    submit.disabled = true;
    progress.hidden = false;
    progress.removeAttribute("value"); // indeterminate until the first progress event
    status.textContent = "Sending…";
    const started = performance.now();
    try {
      const body = await uploadModel(data, token.value, (sent, total) => {
        if (total && sent < total) {
          progress.max = total;
          progress.value = sent;
          status.textContent = `Sending ${megabytes(sent)} of ${megabytes(total)}`;
        } else {
          progress.removeAttribute("value");
          status.textContent = "Sent: the server is checking the files…";
        }
      });
      progress.hidden = true;
      status.textContent = `Done in ${((performance.now() - started) / 1000).toFixed(1)} s.`;
      const id = body.model.id;
      const link = $("upload-link");
      link.href = `/models/${encodeURIComponent(id)}`;
      link.textContent = `Open ${id} →`;
      $("upload-summary").textContent = `${id}: ${body.model.description}`; // the importer's: layers, directions, sizes
      $("upload-matched").replaceChildren(
        ...body.matched.map((m) => {
          const li = document.createElement("li");
          li.textContent = m;
          return li;
        }),
      );
      result.hidden = false;
      result.scrollIntoView({ block: "nearest" });
      perf.uploaded = id;
    } catch (err) {
      progress.hidden = true;
      status.textContent = "";
      show(message, refusal(err), "error");
      if (err instanceof ApiError && err.status === 401) token.focus();
    } finally {
      submit.disabled = false;
    }
  });
}

/** An uploaded model's Delete button: a dialog asks for the token and a second click, then the model is gone. */
export function bindDeleteButton(modelId) {
  const open = $("delete-open");
  const dialog = $("delete-dialog");
  if (!open || !dialog) return;
  const form = $("delete-form");
  const token = $("delete-token");
  const message = $("delete-message");
  const confirm = $("delete-confirm");
  open.addEventListener("click", () => {
    token.value = savedToken();
    show(message, "", "");
    confirm.disabled = false;
    dialog.showModal();
    (token.value ? confirm : token).focus();
  });
  $("delete-cancel").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    saveToken(token.value);
    confirm.disabled = true;
    try {
      await deleteModel(modelId, token.value);
      const home = document.createElement("a");
      home.href = "/";
      home.textContent = "Back to the zoo";
      message.replaceChildren(`${modelId} was deleted. `, home);
      message.dataset.kind = "ok";
      message.hidden = false;
      open.disabled = true;
      perf.deleted = modelId;
    } catch (err) {
      show(message, refusal(err), "error");
      confirm.disabled = false;
    }
  });
}

// Uploads from the Files page through the chunked upload API (SPEC §5):
// hash the file, open a session, send the chunks it still lacks with a
// progress bar, complete. A session is remembered in localStorage, so
// choosing the same file again after a reload or a lost connection resumes
// it where it stopped.
import { Sha256 } from "./sha256.js";

const READ_BLOCK = 4 * 1024 * 1024;
const RETRIES = 4;
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const form = document.getElementById("upload");
const picker = document.getElementById("upload-files");
const box = document.getElementById("upload-progress");
const bar = document.getElementById("upload-bar");
const status = document.getElementById("upload-status");

class UploadError extends Error {}

function say(text) { status.textContent = text; }

async function call(method, url, body) {
  const headers = { "X-CSRF-Token": csrf };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(url, { method, headers, credentials: "same-origin",
                                  body: body === undefined ? undefined : JSON.stringify(body) });
  const data = resp.status === 204 ? {} : await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const error = new UploadError(data.description || `The server answered ${resp.status}.`);
    error.status = resp.status;
    throw error;
  }
  return data;
}

function putChunk(url, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve();
      let description = `The server answered ${xhr.status}.`;
      try { description = JSON.parse(xhr.responseText).description || description; } catch (e) { /* not JSON */ }
      const error = new UploadError(description);
      error.status = xhr.status;
      reject(error);
    };
    xhr.onerror = () => reject(new Error("The connection was lost."));
    xhr.send(blob);
  });
}

async function hashFile(file, onProgress) {
  const hash = new Sha256();
  for (let offset = 0; offset < file.size; offset += READ_BLOCK) {
    const part = await file.slice(offset, offset + READ_BLOCK).arrayBuffer();
    hash.update(new Uint8Array(part));
    onProgress(Math.min(offset + READ_BLOCK, file.size));
  }
  return hash.hex();
}

function libraryPath(file) {
  const folder = form.dataset.folder;
  const name = file.name.normalize("NFC");
  return folder ? `${folder}/${name}` : name;
}

function memoryKey(path, file) {
  return `sync-upload:${path}:${file.size}:${file.lastModified}`;
}

async function resumeOrOpen(path, file, onHashed) {
  const key = memoryKey(path, file);
  const remembered = JSON.parse(localStorage.getItem(key) || "null");
  if (remembered) {
    try {
      const session = await call("GET", `/files/upload/${encodeURIComponent(remembered.id)}`);
      if (session.state === "open") return { key, session };
    } catch (error) {
      if (!(error instanceof UploadError)) throw error;
    }
    localStorage.removeItem(key);
  }
  const sha256 = await hashFile(file, onHashed);
  const head = await call("GET", `/files/rev?path=${encodeURIComponent(path)}`);
  const session = await call("POST", "/files/upload", {
    path, size: file.size, sha256, base_rev: head.rev,
    mtime: Math.floor(file.lastModified / 1000),
    chunk_size: Number(form.dataset.chunkSize),
  });
  localStorage.setItem(key, JSON.stringify({ id: session.id }));
  return { key, session };
}

async function withRetries(action) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await action();
    } catch (error) {
      if (error instanceof UploadError && error.status < 500 || attempt >= RETRIES) throw error;
      await new Promise((r) => setTimeout(r, 1000 * 2 ** attempt));
    }
  }
}

async function uploadOne(file, done, total) {
  const path = libraryPath(file);
  const show = (bytes) => { bar.value = (done + bytes) / Math.max(total, 1); };
  say(`Checking ${file.name}…`);
  const { key, session } = await resumeOrOpen(path, file, (bytes) => {
    say(`Checking ${file.name}… ${Math.floor(100 * bytes / Math.max(file.size, 1))}%`);
  });
  const size = session.chunk_size;
  const received = new Set(session.received);
  let sent = received.size ? [...received].reduce((sum, i) => sum + Math.min(size, file.size - i * size), 0) : 0;
  show(sent);
  say(`Uploading ${file.name}…`);
  for (let index = 0; index < session.chunk_count; index++) {
    if (received.has(index)) continue;
    const blob = file.slice(index * size, Math.min(file.size, (index + 1) * size));
    await withRetries(() => putChunk(
      `/files/upload/${encodeURIComponent(session.id)}/chunks/${index}`, blob,
      (loaded) => show(sent + loaded)));
    sent += blob.size;
    show(sent);
  }
  const result = await withRetries(() => call("POST", `/files/upload/${encodeURIComponent(session.id)}/complete`));
  localStorage.removeItem(key);
  show(file.size);
  return result.status;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const files = [...picker.files];
  if (!files.length) return;
  const total = files.reduce((sum, f) => sum + f.size, 0);
  const button = form.querySelector("button");
  button.disabled = true;
  picker.disabled = true;
  box.hidden = false;
  bar.value = 0;
  let done = 0;
  const notes = [];
  try {
    for (const file of files) {
      const outcome = await uploadOne(file, done, total);
      done += file.size;
      if (outcome === "conflict") notes.push(`${file.name} changed elsewhere meanwhile: see Conflicts.`);
    }
    bar.value = 1;
    say([`Uploaded ${files.length === 1 ? files[0].name : files.length + " files"}.`, ...notes].join(" "));
    setTimeout(() => window.location.reload(), 1200);
  } catch (error) {
    say(`The upload stopped: ${error.message} Choose the same file again to resume.`);
    button.disabled = false;
    picker.disabled = false;
  }
});

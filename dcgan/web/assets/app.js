// The page of `dcgan export --format web`: the exported generator, run by onnxruntime-web
// in this browser, with no network. Samples for a seed are those of `dcgan sample --seed`
// (numpy-random.js draws numpy's latents); the walk is that of `dcgan interpolate`.
// Everything it loads is a classic script beside it, so it also works opened from disk.
// URL parameters, for links: ?seed=&n=&class=&walk=A,B&t=. window.dcganReady settles with
// the bytes first drawn (the project's browser test compares them with `dcgan sample`).
"use strict";

const generator = window.DCGAN_GENERATOR;
const $ = (id) => document.getElementById(id);
const MAX_IMAGES = 256;
let session = null;

function base64Bytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

async function startRuntime() {
  ort.env.wasm.numThreads = 1; // threads need cross-origin isolation, which a file lacks
  ort.env.wasm.wasmBinary = base64Bytes(window.ORT_WASM_BINARY).buffer;
  // The runtime imports its WebAssembly loader as a module: from a blob, which a page
  // opened from disk may import, where it may not import a file.
  const loader = new Blob([window.ORT_WASM_LOADER], { type: "text/javascript" });
  ort.env.wasm.wasmPaths = { mjs: URL.createObjectURL(loader) };
  return ort.InferenceSession.create(base64Bytes(generator.onnxBase64));
}

// Images in [-1, 1] -> bytes, as dcgan's imaging.to_uint8: float32 arithmetic, rint (ties
// to even), then clip.
function toByte(value) {
  const scaled = Math.fround(Math.fround(value + 1) * 127.5);
  const floor = Math.floor(scaled);
  const diff = scaled - floor;
  const rounded = diff > 0.5 || (diff === 0.5 && floor % 2 === 1) ? floor + 1 : floor;
  return Math.min(255, Math.max(0, rounded));
}

// count images of the given latents (count * latentDim values) and class index.
async function generate(latents, count, classIndex) {
  const feeds = {};
  feeds[session.inputNames[0]] = new ort.Tensor("float32", latents, [count, generator.latentDim]);
  if (generator.classes) {
    const Classes = generator.classInputType === "int64" ? BigInt64Array : Int32Array;
    const value = generator.classInputType === "int64" ? BigInt(classIndex) : classIndex;
    feeds[session.inputNames[1]] = new ort.Tensor(
      generator.classInputType, new Classes(count).fill(value), [count]);
  }
  const started = performance.now();
  const result = await session.run(feeds);
  const milliseconds = performance.now() - started;
  return { pixels: result[session.outputNames[0]].data, milliseconds };
}

function draw(canvas, pixels, index) {
  const { height, width, channels } = generator;
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  const offset = index * height * width * channels;
  for (let p = 0; p < height * width; p++) {
    for (let c = 0; c < 3; c++) {
      image.data[4 * p + c] = toByte(pixels[offset + p * channels + (channels === 3 ? c : 0)]);
    }
    image.data[4 * p + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

// The bytes a canvas shows, as base64 of (height, width, channels): what the test compares.
function shown(canvas) {
  const { height, width, channels } = generator;
  const rgba = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  let binary = "";
  for (let p = 0; p < height * width; p++) {
    for (let c = 0; c < channels; c++) binary += String.fromCharCode(rgba[4 * p + c]);
  }
  return btoa(binary);
}

function wholeNumber(input, fallback, limit) {
  const value = Number(input.value);
  if (!Number.isInteger(value) || value < 0) return fallback;
  return limit === undefined ? value : Math.min(value, limit);
}

function classIndex() {
  return generator.classes ? Number($("class").value) : null;
}

async function showSamples() {
  const seed = wholeNumber($("seed"), 0);
  const count = Math.max(1, wholeNumber($("count"), 16, MAX_IMAGES));
  $("seed").value = seed;
  $("count").value = count;
  const chosen = classIndex();
  const classOption = chosen === null ? "" : ` --class ${chosen}`;
  $("command").textContent = `dcgan sample --seed ${seed} -n ${count}${classOption}`;
  const { pixels, milliseconds } = await generate(
    NumpyRandom.latents(seed, count, generator.latentDim), count, chosen);
  const grid = $("grid");
  grid.replaceChildren();
  const canvases = [];
  for (let i = 0; i < count; i++) {
    const canvas = document.createElement("canvas");
    draw(canvas, pixels, i);
    grid.append(canvas);
    canvases.push(canvas);
  }
  $("status").textContent =
    `${count} image${count === 1 ? "" : "s"} of ${generator.width}x${generator.height} in ` +
    `${milliseconds.toFixed(1)} ms (onnxruntime-web ${ort.env.versions.web}, WebAssembly, ` +
    `1 thread)`;
  return { seed, count, class: chosen, milliseconds, pixels: canvases.map(shown) };
}

async function showWalk() {
  const a = wholeNumber($("walk-a"), 1);
  const b = wholeNumber($("walk-b"), 2);
  const t = Number($("walk-t").value) / 1000;
  $("walk-t-text").textContent = t.toFixed(3);
  const dim = generator.latentDim;
  const latent = NumpyRandom.slerp(
    NumpyRandom.latents(a, 1, dim), NumpyRandom.latents(b, 1, dim), t);
  const { pixels } = await generate(latent, 1, classIndex());
  const canvas = $("walk").querySelector("canvas");
  draw(canvas, pixels, 0);
  return { seeds: [a, b], t, pixels: shown(canvas) };
}

function describe() {
  const classes = generator.classes;
  $("title").textContent = `${generator.name}: a dcgan generator`;
  $("about").textContent =
    `${generator.width}x${generator.height} ${generator.channels === 3 ? "colour" : "gray"} ` +
    `images from ${generator.latentDim} latent values` +
    (classes ? `, ${classes.length} classes` : "") + `. Exported from ${generator.source}.`;
  if (classes) {
    $("class-label").hidden = false;
    classes.forEach((name, index) => $("class").append(new Option(`${index}: ${name}`, index)));
  }
}

function applyParameters(params) {
  for (const [name, id] of [["seed", "seed"], ["n", "count"], ["class", "class"]]) {
    if (params.has(name)) $(id).value = params.get(name);
  }
  if (params.has("walk")) {
    const [a, b] = params.get("walk").split(",");
    $("walk-a").value = a;
    $("walk-b").value = b;
  }
  if (params.has("t")) $("walk-t").value = Math.round(Number(params.get("t")) * 1000);
}

function fail(what, error) {
  $("status").className = "error";
  $("status").textContent = `${what}: ${error}`;
}

async function main() {
  describe();
  const params = new URLSearchParams(location.search);
  applyParameters(params);
  try {
    session = await startRuntime();
  } catch (error) {
    fail("The generator could not start in this browser", error);
    return { error: String(error) };
  }
  $("samples-controls").disabled = false;
  $("walk-controls").disabled = false;
  const samples = await showSamples();
  const walk = await showWalk();

  // One request at a time: a slider dragged fast asks again only once the last is drawn.
  let busy = Promise.resolve();
  const queue = (task) => {
    busy = busy.then(task).catch((error) => fail("The generator failed", error));
  };
  $("show").addEventListener("click", () => queue(showSamples));
  $("seed").addEventListener("change", () => queue(showSamples));
  $("count").addEventListener("change", () => queue(showSamples));
  $("class").addEventListener("change", () => queue(async () => { await showSamples(); await showWalk(); }));
  $("new").addEventListener("click", () => {
    $("seed").value = crypto.getRandomValues(new Uint32Array(1))[0] % 2147483648;
    queue(showSamples);
  });
  for (const id of ["walk-a", "walk-b", "walk-t"]) {
    $(id).addEventListener("input", () => queue(showWalk));
  }
  return { samples, walk };
}

window.dcganReady = main().catch((error) => {
  fail("The generator failed", error);
  return { error: String(error) };
});

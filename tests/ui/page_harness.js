// Runs the page's app.js in Node against a minimal stand-in for the browser, then plays the scenario named on the
// command line and prints what the page shows as one JSON line. Used by test_ui_page_js.py where no browser is.
//
//   node page_harness.js path/to/app.js SCENARIO
//
// Files are {name, type, pixels: [w, h] | null}: an <img> given the object URL of a file with pixels loads with
// that size; one without fires onerror, as a browser does for a text file or a truncated image.
"use strict";

const fs = require("fs");
const vm = require("vm");

const [appPath, scenario] = process.argv.slice(2);

class ClassList {
  constructor() { this.set = new Set(); }
  add(c) { this.set.add(c); }
  remove(c) { this.set.delete(c); }
  contains(c) { return this.set.has(c); }
  toggle(c, on) { if (on === undefined ? !this.set.has(c) : on) this.set.add(c); else this.set.delete(c); }
}

class Element {
  constructor(id, tag = "div") {
    this.id = id; this.tagName = tag; this.children = []; this.classList = new ClassList(); this.style = {};
    this.hidden = false; this.textContent = ""; this.value = ""; this.checked = false; this.disabled = false;
    this.files = []; this.listeners = {}; this.width = 0; this.height = 0; this.clientWidth = 800;
    this.clientHeight = 600;
  }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  appendChild(child) { this.children.push(child); child.parent = this; return child; }
  getBoundingClientRect() { return {left: 0, top: 0, width: this.width, height: this.height}; }
  getContext() { return canvasContext; }
  setPointerCapture() {}
  matches() { return false; }
}

const canvasContext = new Proxy({}, {  // every drawing call is a no-op; getImageData returns blank pixels
  get(target, key) {
    if (key === "getImageData") return (x, y, w, h) => ({data: new Uint8ClampedArray(w * h * 4)});
    if (key in target) return target[key];
    return () => {};
  },
  set(target, key, value) { target[key] = value; return true; },
});

const elements = {};
const document = {
  getElementById: (id) => (elements[id] ||= new Element(id, id === "mask" ? "canvas" : "div")),
  createElement: (tag) => new Element(null, tag),
  addEventListener() {},
};

const objectUrls = new Map();  // url -> file
const revoked = [];
let nextUrl = 1;
const URL_ = {
  createObjectURL(file) { const url = `blob:${nextUrl++}`; objectUrls.set(url, file); return url; },
  revokeObjectURL(url) { revoked.push(url); },
};

class ImgElement extends Element {  // <img>: loads the file behind an object URL, or fails like a browser
  constructor(id) { super(id, "img"); this.naturalWidth = 0; this.naturalHeight = 0; this._src = ""; }
  get src() { return this._src; }
  set src(url) {
    this._src = url;
    const file = objectUrls.get(url);
    setTimeout(() => {
      if (file && file.pixels) {
        [this.naturalWidth, this.naturalHeight] = file.pixels;
        if (this.onload) this.onload();
      } else {
        this.naturalWidth = this.naturalHeight = 0;
        if (this.onerror) this.onerror(new Error("decode"));
      }
    }, 0);
  }
}
class Image_ extends ImgElement { constructor() { super(null); } }
for (const id of ["img-before", "img-after"]) elements[id] = new ImgElement(id);

class Option {
  constructor(text, value, defaultSelected, selected) { Object.assign(this, {text, value, selected, title: ""}); }
}

const METHODS = {
  methods: [
    {name: "telea", kind: "classical", description: "Telea"}, {name: "ns", kind: "classical", description: "NS"},
    {name: "lama_faces64", kind: "learned", description: "faces"}, {name: "mean", kind: "baseline", description: "m"},
  ],
  default: "telea",
};
const HEALTH = {status: "ok", limits: {max_upload_bytes: 20 * 2 ** 20}};
const fetch = async (url) => ({ok: true, json: async () => (url === "/api/methods" ? METHODS : HEALTH)});

const context = vm.createContext({
  document, window: {devicePixelRatio: 1}, Image: Image_, Option, URL: URL_, fetch, setTimeout, console,
  getComputedStyle: () => ({paddingLeft: "0", paddingRight: "0", paddingTop: "0", paddingBottom: "0"}),
  ResizeObserver: class { observe() {} }, OffscreenCanvas: class { getContext() { return canvasContext; } },
  ImageData: class { constructor(w, h) { this.data = new Uint8ClampedArray(w * h * 4); } },
});
vm.runInContext(fs.readFileSync(appPath, "utf8"), context, {filename: "app.js"});

const photo = {name: "photo.png", type: "image/png", size: 1000, pixels: [40, 30]};
const text = {name: "notes.txt", type: "text/plain", size: 20, pixels: null};
const broken = {name: "broken.jpg", type: "image/jpeg", size: 20, pixels: null};
const flush = () => new Promise((resolve) => setTimeout(resolve, 20));

function shown() {  // what the user sees, read back from the page's own state and elements
  return vm.runInContext(`({
    image: state.image && {name: state.image.name, width: state.image.width, height: state.image.height},
    beforeSrc: ui.before.src, status: ui.status.textContent, statusError: ui.status.classList.contains("error"),
    viewHidden: ui.view.hidden, canvas: [ui.canvas.width, ui.canvas.height], ops: state.ops.length,
    methods: ui.method.children.map((g) => ({label: g.label, names: g.children.map((o) => o.value)})),
    selected: ui.method.children.flatMap((g) => g.children).filter((o) => o.selected).map((o) => o.value),
  })`, context);
}

async function main() {
  await flush();  // loadMethods()
  const out = {loaded: shown()};
  const open = (file) => vm.runInContext("openImage", context)(file);
  if (scenario === "non-image-keeps-image" || scenario === "broken-image-keeps-image") {
    await open(photo);
    await flush();
    out.first = shown();
    vm.runInContext("state.ops.push({type: 'clear'}); state.cursor = 1;", context);  // a painted mask to keep
    await open(scenario === "non-image-keeps-image" ? text : broken);
    await flush();
    out.after = shown();
    out.revoked = revoked;
  } else if (scenario === "non-image-first") {
    await open(text);
    await flush();
    out.after = shown();
  } else if (scenario === "mask-non-image") {
    await open(photo);
    await flush();
    await vm.runInContext("openMask", context)(text);
    await flush();
    out.after = shown();
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((err) => { console.error(err.stack || String(err)); process.exit(1); });

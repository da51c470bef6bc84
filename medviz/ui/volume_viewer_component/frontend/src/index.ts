// MedViz volume viewer: NiiVue (WebGL) inside a Streamlit component.
//
// The volume arrives once per study, as a NIfTI file the server hosts for this session (its URL is the only
// thing the render arguments carry); slice steps, window/level, cine and zoom all run here, on the GPU, with no
// message to the server. The component reports back only finished actions, as LPS mm positions: a crosshair
// click, a finished distance, a finished ROI rectangle, a changed window — never a slice step.
import { Niivue, NVImage, DRAG_MODE, SHOW_RENDER, SLICE_TYPE } from "@niivue/niivue";
import { Streamlit } from "streamlit-component-lib/dist/streamlit";

type Args = {
  url: string;
  study: string; // changes when the study changes (the URL may repeat for identical bytes)
  window: [number, number]; // [low, high] in the volume's units
  presets: Record<string, [number, number]>;
  units: string;
  layout: "axial" | "coronal" | "sagittal" | "multiplanar" | "multiplanar3d" | "render";
  geometry: boolean; // false: a plain stack (single plane, no crosshair linking)
  height: number;
  overlay_url?: string | null; // a label map or heat map drawn over the study (not editable)
  overlay_opacity?: number;
  overlay_colormap?: string;
  overlay_range?: [number, number];
  drawing_url?: string | null; // an editable mask (the segmentation to correct by hand)
  drawing_version?: string;
  drawing_rgb?: [number, number, number]; // the mask's colour
  drawing_style?: "fill" | "contour";
  fps: number;
};

type Report = Record<string, unknown> & { kind: string; id: number };

const LAYOUTS: Record<string, SLICE_TYPE> = {
  axial: SLICE_TYPE.AXIAL,
  coronal: SLICE_TYPE.CORONAL,
  sagittal: SLICE_TYPE.SAGITTAL,
  multiplanar: SLICE_TYPE.MULTIPLANAR,
  multiplanar3d: SLICE_TYPE.MULTIPLANAR,
  render: SLICE_TYPE.RENDER,
};

const root = document.getElementById("root") as HTMLDivElement;
root.innerHTML = `
  <div class="bar">
    <select id="layout" title="Layout (1-4)">
      <option value="axial">Axial</option><option value="coronal">Coronal</option>
      <option value="sagittal">Sagittal</option><option value="multiplanar">3 planes</option>
      <option value="multiplanar3d">3 planes + 3D</option><option value="render">3D</option>
    </select>
    <select id="tool" title="Left-button tool">
      <option value="crosshair">Probe / crosshair</option><option value="distance">Distance</option>
      <option value="roi">ROI rectangle</option><option value="ellipse">ROI ellipse</option>
      <option value="window">Window/level</option><option value="pan">Pan</option>
      <option value="brush" hidden>Brush (mask)</option><option value="eraser" hidden>Eraser (mask)</option>
    </select>
    <span id="edit" hidden><button id="undo" title="Undo the last stroke (z)">Undo</button>
      <button id="apply" title="Use the corrected mask for measurements and exports">Apply correction</button></span>
    <span id="presets"></span>
    <button id="fit" title="Undo zoom and pan (0)">Fit</button>
    <button id="play" title="Cine (space)">▶ Cine</button>
    <input id="fps" type="number" min="1" max="60" step="1" title="frames per second"> fps
    <button id="help" title="Shortcuts (?)">?</button>
  </div>
  <div id="holder"><canvas id="gl"></canvas></div>
  <div id="status" class="status"></div>
  <div id="helpbox" class="help" hidden>
    <b>Mouse</b>: wheel = next/previous slice · left = tool · right- or Ctrl-drag = window/level ·
    middle- or Shift-drag = pan · with the Pan tool the wheel zooms · Fit (or 0) = no zoom<br>
    <b>Keys</b>: ↑/↓ or PageUp/PageDown = slice · space = cine · 1 axial · 2 coronal · 3 sagittal ·
    4 three planes · r reset window · z undo a mask stroke · ? this help<br>
    <b>Tools</b>: Distance and ROI: drag on the image; the result is listed beside the viewer. Brush/Eraser (on
    the Segment page): paint the mask, then Apply correction.
  </div>
  <div id="nogl" class="nogl" hidden>WebGL 2 is not available in this browser: the viewer cannot run here.
    The page shows the static rendering instead.</div>`;

const canvas = document.getElementById("gl") as HTMLCanvasElement;
const status = document.getElementById("status") as HTMLDivElement;
const layoutSel = document.getElementById("layout") as HTMLSelectElement;
const toolSel = document.getElementById("tool") as HTMLSelectElement;
const playBtn = document.getElementById("play") as HTMLButtonElement;
const fpsInput = document.getElementById("fps") as HTMLInputElement;

let nv: Niivue | null = null;
let args: Args | null = null;
let loadedStudy = "";
let loadedOverlay = "";
let nextId = Date.now();
let cine: number | null = null;
let defaultWindow: [number, number] = [0, 1];
let units = "a.u.";

function send(report: Omit<Report, "id">): void {
  Streamlit.setComponentValue({ ...report, id: ++nextId });
}

function setLayout(name: string): void {
  if (!nv) return;
  nv.opts.multiplanarShowRender = name === "multiplanar3d" ? SHOW_RENDER.ALWAYS : SHOW_RENDER.NEVER;
  nv.setSliceType(LAYOUTS[name] ?? SLICE_TYPE.AXIAL);
}

function webgl2(): boolean {
  try {
    return !!document.createElement("canvas").getContext("webgl2");
  } catch {
    return false;
  }
}

function lps(mm: ArrayLike<number>): number[] {
  return [-mm[0], -mm[1], mm[2]]; // NIfTI world space is RAS
}

function axis(): number {
  // the voxel axis the wheel steps in the current (first) plane: axial -> z, coronal -> y, sagittal -> x
  const t = nv ? nv.opts.sliceType : SLICE_TYPE.AXIAL;
  return t === SLICE_TYPE.CORONAL ? 1 : t === SLICE_TYPE.SAGITTAL ? 0 : 2;
}

function voxel(): number[] {
  if (!nv || !nv.volumes.length) return [0, 0, 0];
  const v = nv.frac2vox(nv.scene.crosshairPos);
  return [Math.round(v[0]), Math.round(v[1]), Math.round(v[2])];
}

function dims(): number[] {
  const d = nv && nv.volumes.length ? nv.volumes[0].hdr!.dims : [3, 1, 1, 1];
  return [d[1], d[2], d[3]];
}

function tiles(): { plane: number; rect: number[] }[] {
  // the drawn tiles in CSS pixels of the canvas (for tests: the planes of the layout and where they are)
  if (!nv) return [];
  const dpr = window.devicePixelRatio || 1;
  return nv.screenSlices.map((t) => ({ plane: t.axCorSag, rect: t.leftTopWidthHeight.map((v) => v / dpr) }));
}
(window as unknown as { medvizTiles: typeof tiles }).medvizTiles = tiles;

function showStatus(): void {
  if (!nv || !nv.volumes.length) return;
  const vol = nv.volumes[0];
  const v = voxel();
  const n = dims();
  const a = axis();
  const value = vol.getValue(v[0], v[1], v[2]);
  const mm = lps(nv.frac2mm(nv.scene.crosshairPos));
  const lo = vol.cal_min ?? 0, hi = vol.cal_max ?? 1;
  status.textContent =
    `slice ${v[a] + 1} / ${n[a]} · W ${(hi - lo).toFixed(0)} L ${((hi + lo) / 2).toFixed(0)} · ` +
    `value ${Number.isFinite(value) ? value.toFixed(1) : "—"} ${units}` +
    (args && args.geometry ? ` · LPS ${mm.map((x) => x.toFixed(1)).join(", ")} mm` : "");
  status.dataset.slice = String(v[a] + 1);
  status.dataset.window = `${lo},${hi}`;
}

function step(delta: number): void {
  if (!nv) return;
  const d = [0, 0, 0];
  d[axis()] = delta;
  nv.moveCrosshairInVox(d[0], d[1], d[2]);
  showStatus();
}

function cineTick(): void {
  if (!nv) return;
  const a = axis();
  const v = voxel();
  const last = dims()[a] - 1;
  const d = [0, 0, 0];
  d[a] = v[a] >= last ? -last : 1; // wrap around to the first slice
  nv.moveCrosshairInVox(d[0], d[1], d[2]);
  showStatus();
}

function setCine(on: boolean): void {
  if (cine !== null) window.clearInterval(cine);
  cine = null;
  if (on) cine = window.setInterval(cineTick, 1000 / Math.max(1, Number(fpsInput.value) || 10));
  playBtn.textContent = on ? "⏸ Pause" : "▶ Cine";
  playBtn.dataset.playing = on ? "1" : "0";
}

function setWindow(lo: number, hi: number, report: boolean): void {
  if (!nv || !nv.volumes.length) return;
  nv.volumes[0].cal_min = lo;
  nv.volumes[0].cal_max = hi;
  nv.updateGLVolume();
  showStatus();
  reportedWindow = `${lo},${hi}`;
  if (report) send({ kind: "window", low: lo, high: hi });
}

function applyTool(): void {
  if (!nv) return;
  const drawing = toolSel.value === "brush" || toolSel.value === "eraser";
  nv.setDrawingEnabled(drawing);
  if (drawing) nv.setPenValue(toolSel.value === "brush" ? 1 : 0, false);
  const primary = {
    crosshair: DRAG_MODE.crosshair,
    distance: DRAG_MODE.measurement,
    roi: DRAG_MODE.roiSelection,
    ellipse: DRAG_MODE.roiSelection,
    window: DRAG_MODE.windowing,
    pan: DRAG_MODE.pan,
  }[toolSel.value] ?? DRAG_MODE.crosshair;
  nv.setMouseEventConfig({
    leftButton: { primary, withCtrl: DRAG_MODE.windowing, withShift: DRAG_MODE.pan },
    rightButton: DRAG_MODE.windowing,
    centerButton: DRAG_MODE.pan,
  });
}

let reportedWindow = "";

function reportWindowIfChanged(): void {
  // after any button is released: a drag in windowing mode changes cal_min/cal_max without a callback
  if (!nv || !nv.volumes.length) return;
  showStatus();
  const vol = nv.volumes[0];
  const now = `${vol.cal_min},${vol.cal_max}`;
  if (now !== reportedWindow) {
    reportedWindow = now;
    send({ kind: "window", low: vol.cal_min, high: vol.cal_max });
  }
}

function makeViewer(): Niivue {
  const viewer = new Niivue({
    backColor: [0, 0, 0, 1],
    crosshairColor: [0.1, 0.9, 0.2, 1],
    isRadiologicalConvention: true, // the patient's right on the image left, as radiologists read
    isOrientationTextVisible: true,
    show3Dcrosshair: true,
    dragAndDropEnabled: false,
    loadingText: "loading",
  });
  viewer.attachToCanvas(canvas);
  canvas.addEventListener("pointerup", () => window.setTimeout(reportWindowIfChanged, 0));
  viewer.onLocationChange = () => showStatus();
  viewer.onIntensityChange = () => showStatus();
  viewer.onMouseUp = () => {
    if (toolSel.value !== "crosshair" || !viewer.volumes.length) return;
    const v = voxel();
    // the position in LPS mm is the contract; the server finds the voxel (and its value) from its own affine
    send({ kind: "crosshair", lps: lps(viewer.frac2mm(viewer.scene.crosshairPos)),
           shown_value: viewer.volumes[0].getValue(v[0], v[1], v[2]), plane: layoutSel.value });
  };
  viewer.onMeasurementCompleted = (m) => {
    send({ kind: "distance", start_lps: lps(m.startMM), end_lps: lps(m.endMM), mm: m.distance });
  };
  viewer.onDragRelease = (p) => {
    if (toolSel.value === "roi" || toolSel.value === "ellipse") {
      send({ kind: toolSel.value, start_lps: lps(p.mmStart), end_lps: lps(p.mmEnd), plane: p.axCorSag });
    }
  };
  return viewer;
}

async function load(a: Args): Promise<void> {
  if (!nv) {
    nv = makeViewer();
    nv.opts.isOrientationTextVisible = a.geometry; // a plain stack has no patient directions to label
    applyTool();
  }
  setCine(false);
  status.textContent = "loading the study…";
  setLayout(a.geometry ? a.layout : "axial");
  await nv.loadVolumes([{ url: a.url, name: "study.nii.gz", colormap: "gray", cal_min: a.window[0], cal_max: a.window[1] }]);
  loadedStudy = a.study;
  loadedDrawing = "";
  reportedWindow = `${a.window[0]},${a.window[1]}`;
  loadedOverlay = "";
  defaultWindow = a.window;
  status.dataset.loaded = a.study;
  showStatus();
}

async function loadOverlay(a: Args): Promise<void> {
  if (!nv) return;
  while (nv.volumes.length > 1) nv.removeVolume(nv.volumes[1]);
  if (a.overlay_url) {
    const [lo, hi] = a.overlay_range ?? [0.5, 1];
    nv.addVolume(await NVImage.loadFromUrl({ url: a.overlay_url, name: "overlay.nii.gz", colormap: a.overlay_colormap ?? "red",
                                             opacity: a.overlay_opacity ?? 0.5, cal_min: lo, cal_max: hi }));
  }
  loadedOverlay = a.overlay_url ?? "";
  status.dataset.layers = String(nv.volumes.length); // the study, plus one when an overlay is drawn
}

let loadedDrawing = "";
let maskImage: NVImage | null = null; // the mask as loaded: its uint8 header is the one the correction is saved with

async function loadDrawing(a: Args): Promise<void> {
  if (!nv) return;
  const edit = document.getElementById("edit") as HTMLSpanElement;
  const tools = ["brush", "eraser"].map((v) => toolSel.querySelector(`option[value=${v}]`) as HTMLOptionElement);
  if (a.drawing_url) {
    // named, because the hosted URL's own suffix (.gz) does not say it is NIfTI
    const mask = await NVImage.loadFromUrl({ url: a.drawing_url, name: "drawing.nii.gz" });
    if (!nv.loadDrawing(mask)) throw new Error("the mask does not fit the study");
    maskImage = mask;
    styleDrawing(a);
  } else if (nv.drawBitmap) {
    nv.closeDrawing();
  }
  edit.hidden = !a.drawing_url;
  tools.forEach((o) => (o.hidden = !a.drawing_url));
  loadedDrawing = `${a.drawing_url ?? ""}#${a.drawing_version ?? ""}`;
}

function styleDrawing(a: Args): void {
  // fill: the mask at the chosen opacity; contour: only its rim, opaque
  if (!nv) return;
  const opacity = a.overlay_opacity ?? 0.5;
  const contour = a.drawing_style === "contour";
  nv.drawOpacity = contour ? 0 : opacity;
  nv.drawRimOpacity = contour ? 1 : opacity;
  if (a.drawing_rgb) {
    const [r, g, b] = a.drawing_rgb;
    nv.drawLut.lut.set([r, g, b, 255], 4); // pen value 1
  }
  nv.updateGLVolume();
  status.dataset.drawing = `${contour ? "contour" : "fill"} ${(a.drawing_rgb ?? []).join(",")} ${opacity}`;
}

async function applyCorrection(): Promise<void> {
  // the drawing as NIfTI on the study's own grid and header: the server reads it like any upload
  // (saved with the loaded mask's own uint8 header — the study's may be RGB or float — so the server reads a
  // plain label map on the study's grid, in the file's voxel order)
  if (!nv || !nv.drawBitmap || !maskImage) return;
  const data = await maskImage.saveToDisk("", nv.drawBitmap);
  if (data instanceof Uint8Array) Streamlit.setComponentValue(data);
}

function presetButtons(a: Args): void {
  const box = document.getElementById("presets") as HTMLSpanElement;
  box.innerHTML = "";
  for (const [name, [lo, hi]] of Object.entries({ Default: defaultWindow, ...a.presets })) {
    const b = document.createElement("button");
    b.textContent = name;
    b.title = `window ${lo} to ${hi} ${a.units}`;
    b.onclick = () => setWindow(lo, hi, true);
    box.appendChild(b);
  }
}

async function onRender(event: Event): Promise<void> {
  const a = (event as CustomEvent).detail.args as Args;
  args = a;
  units = a.units;
  (document.getElementById("holder") as HTMLDivElement).style.height = `${a.height}px`;
  if (!webgl2()) {
    (document.getElementById("nogl") as HTMLDivElement).hidden = false;
    Streamlit.setComponentValue({ kind: "no-webgl", id: ++nextId });
    Streamlit.setFrameHeight();
    return;
  }
  if (a.study !== loadedStudy) {
    fpsInput.value = String(a.fps);
    if (nv) nv.opts.isOrientationTextVisible = a.geometry;
    layoutSel.value = a.geometry ? a.layout : "axial";
    layoutSel.disabled = !a.geometry;
    await load(a);
  }
  if ((a.overlay_url ?? "") !== loadedOverlay) await loadOverlay(a);
  if (`${a.drawing_url ?? ""}#${a.drawing_version ?? ""}` !== loadedDrawing) await loadDrawing(a);
  else if (a.drawing_url) styleDrawing(a); // opacity, colour or fill/contour changed: the strokes stay
  presetButtons(a);
  setLayout(layoutSel.value);
  Streamlit.setFrameHeight();
}

layoutSel.onchange = () => setLayout(layoutSel.value);
toolSel.onchange = applyTool;
playBtn.onclick = () => setCine(cine === null);
function fit(): void {
  if (!nv) return;
  nv.scene.pan2Dxyzmm = [0, 0, 0, 1];
  nv.drawScene();
}
(document.getElementById("fit") as HTMLButtonElement).onclick = fit;
(document.getElementById("undo") as HTMLButtonElement).onclick = () => nv && nv.drawUndo();
(document.getElementById("apply") as HTMLButtonElement).onclick = () => void applyCorrection();
fpsInput.onchange = () => cine !== null && setCine(true);
(document.getElementById("help") as HTMLButtonElement).onclick = () => {
  const box = document.getElementById("helpbox") as HTMLDivElement;
  box.hidden = !box.hidden;
};
document.addEventListener("keydown", (e) => {
  if ((e.target as HTMLElement).tagName === "INPUT") return;
  const keys: Record<string, () => void> = {
    ArrowUp: () => step(1), PageUp: () => step(1), ArrowDown: () => step(-1), PageDown: () => step(-1),
    " ": () => setCine(cine === null), "?": () => (document.getElementById("help") as HTMLButtonElement).click(),
    r: () => setWindow(defaultWindow[0], defaultWindow[1], true),
    z: () => nv && nv.drawUndo(),
    "0": fit,
    "1": () => { layoutSel.value = "axial"; layoutSel.dispatchEvent(new Event("change")); },
    "2": () => { layoutSel.value = "coronal"; layoutSel.dispatchEvent(new Event("change")); },
    "3": () => { layoutSel.value = "sagittal"; layoutSel.dispatchEvent(new Event("change")); },
    "4": () => { layoutSel.value = "multiplanar"; layoutSel.dispatchEvent(new Event("change")); },
  };
  const act = keys[e.key];
  if (act && !(layoutSel.disabled && "234".includes(e.key))) {
    act();
    e.preventDefault();
  }
});

Streamlit.events.addEventListener(Streamlit.RENDER_EVENT, (e) => void onRender(e));
Streamlit.setComponentReady();

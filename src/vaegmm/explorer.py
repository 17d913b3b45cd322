"""An interactive latent map for report.html: the decoder runs in the page, in plain JavaScript.

Everything the page needs travels inside it: the decoder's weights (float32, base64), the GMM, the
novelty calibration of the latent density, the figures' 2-D plane, a sample of the training latent means
and of the training images. Nothing is fetched, so the file works from disk, offline; without
JavaScript the report's static figures remain.
"""

from __future__ import annotations

import base64
import json

import numpy as np

from .novelty import STATISTICS
from .plots import class_colours

MAP_POINTS = 3000  # training latent means drawn on the map (a seeded sample)
CLICKABLE_IMAGES = 300  # of which this many carry their original image, shown when clicked
PATH_STEPS = 8
LATENT = STATISTICS.index("latent_nll")  # the one statistic the page can compute from a latent point alone


def _b64(array: np.ndarray, dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode()


def decoder_layers(model) -> list[dict]:
    """The decoder as a list of dense layers: weights (out, in) as base64 float16 (half the bytes; the
    decoded pixels stay within 1/255 of PyTorch's, which the browser test checks), biases as float32, and
    the activation after each ("relu", or "sigmoid" for the pixels)."""
    linears = [m for m in model.decoder if hasattr(m, "weight")] + [model.fc_out]
    return [{"out": int(layer.weight.shape[0]), "in": int(layer.weight.shape[1]),
             "W": _b64(layer.weight.detach().cpu().numpy(), "<f2"), "b": _b64(layer.bias.detach().cpu().numpy(), "<f4"),
             "act": "sigmoid" if layer is model.fc_out else "relu"} for layer in linears]


def explorer_data(*, model, gmm, novelty, plane, Z: np.ndarray, classes_of_points: np.ndarray, images: np.ndarray,
                  seed: int = 0) -> dict:
    """Plain data for the page. Z (N, D) training latent means, classes_of_points (N,) their GMM classes,
    images (N, H, W) the training images."""
    rng = np.random.default_rng(seed)
    shown = np.sort(rng.choice(len(Z), size=min(MAP_POINTS, len(Z)), replace=False))
    P = plane.project(Z[shown])  # (n, 2)
    clickable = shown[: min(CLICKABLE_IMAGES, len(shown))]
    ellipses = []
    for mean, cov, cls in zip(gmm.means_, gmm.covariances_, gmm.component_classes_):
        eigval, eigvec = np.linalg.eigh(plane.project_covariance(cov))
        t = np.linspace(0, 2 * np.pi, 64)
        circle = np.stack([np.cos(t), np.sin(t)], axis=1)
        centre = plane.project(mean[None])[0]
        ellipses.append({"class": int(cls), "points": (centre + 2 * (circle * np.sqrt(np.maximum(eigval, 0))) @ eigvec.T).round(5).tolist()})
    log_det = np.log(np.diagonal(gmm.precisions_cholesky_, axis1=1, axis2=2)).sum(axis=1)
    return {
        "imageShape": list(model.config.image_shape),
        "latentDim": int(model.config.latent_dim),
        "decoder": decoder_layers(model),
        "plane": {"origin": plane.origin.tolist(), "axes": plane.axes.tolist(), "names": list(plane.names)},
        "gmm": {"weights": gmm.weights_.tolist(), "means": gmm.means_.tolist(),
                "precChol": gmm.precisions_cholesky_.tolist(), "logDet": log_det.tolist(),
                "componentClasses": gmm.component_classes_.tolist(), "classes": gmm.classes_.tolist(),
                # The figures' colours, as {class: "#rrggbb"}, so the page and the report draw a class alike.
                "colours": {str(c): v for c, v in class_colours(gmm.classes_).items()}},
        "novelty": None if novelty is None else {"mean": float(novelty.mean_[LATENT]), "std": float(novelty.std_[LATENT]),
                                                  "threshold": float(novelty.threshold_)},
        "points": {"xy": P.round(5).tolist(), "cls": classes_of_points[shown].tolist()},
        "clickable": {"xy": plane.project(Z[clickable]).round(5).tolist(), "z": Z[clickable].tolist(),
                      "images": _b64(np.round(images[clickable] * 255), "u1")},
        "ellipses": ellipses,
    }


def explorer_html(data: dict) -> str:
    """The explorer's HTML: its elements, its data as JSON and its script."""
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return EXPLORER_TEMPLATE.replace("__DATA__", payload)


EXPLORER_TEMPLATE = r"""
<section id="explorer" style="display:none">
<p>Move the pointer (or a finger) over the map: the decoder runs in this page and draws the image of that
latent point, with the GMM's class probabilities. Click a training point to see its image beside its
reconstruction. Tick <em>path</em> and click two places to see the images along the straight line between them.</p>
<div style="display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start">
<canvas id="latent-map" width="480" height="480" style="border:1px solid #ccc;touch-action:none;cursor:crosshair"></canvas>
<div>
<canvas id="decoded" width="224" height="224" style="border:1px solid #ccc;image-rendering:pixelated"></canvas>
<div id="probabilities" style="font-family:monospace;white-space:pre;margin-top:6px"></div>
<label><input type="checkbox" id="path-mode"> path</label>
<div id="clicked" style="margin-top:6px"></div>
</div>
</div>
<canvas id="path-strip" width="640" height="80" style="display:none;margin-top:8px"></canvas>
</section>
<script id="explorer-data" type="application/json">__DATA__</script>
<script>
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("explorer-data").textContent);
  document.getElementById("explorer").style.display = "block";
  const bytes = (s) => { const b = atob(s), u = new Uint8Array(b.length); for (let i = 0; i < b.length; i++) u[i] = b.charCodeAt(i); return u.buffer; };
  const f32 = (s) => new Float32Array(bytes(s));
  function f16(s) {  // IEEE half floats (little-endian) to a Float32Array
    const h = new Uint16Array(bytes(s)), out = new Float32Array(h.length);
    for (let i = 0; i < h.length; i++) {
      const sign = h[i] & 0x8000 ? -1 : 1, exp = (h[i] >> 10) & 0x1f, frac = h[i] & 0x3ff;
      out[i] = sign * (exp === 0 ? frac * 2 ** -24 : exp === 31 ? (frac ? NaN : Infinity) : (1 + frac / 1024) * 2 ** (exp - 15));
    }
    return out;
  }
  const layers = data.decoder.map((l) => ({ W: f16(l.W), b: f32(l.b), n: l.out, m: l.in, act: l.act }));
  const [H, W] = data.imageShape, D = data.latentDim;
  const decodedCanvas = document.getElementById("decoded");
  decodedCanvas.width = decodedCanvas.height * W / H;  // keep the images' own aspect
  const scratch = layers.map((l) => new Float32Array(l.n));
  function decode(z) {  // z: latent point (D); returns pixels in [0, 1] (H*W), as torch computes them in float32
    let x = Float32Array.from(z);
    layers.forEach((l, k) => {
      const y = scratch[k];
      for (let i = 0; i < l.n; i++) {
        let s = l.b[i]; const row = i * l.m;
        for (let j = 0; j < l.m; j++) s += l.W[row + j] * x[j];
        y[i] = l.act === "relu" ? (s > 0 ? s : 0) : 1 / (1 + Math.exp(-s));
      }
      x = y;
    });
    return x;
  }
  const lift = (p) => data.plane.origin.map((o, d) => o + p[0] * data.plane.axes[d][0] + p[1] * data.plane.axes[d][1]);
  const g = data.gmm, K = g.weights.length;
  function componentLogProb(z) {
    return g.means.map((mu, k) => {
      let maha = 0; const P = g.precChol[k];
      for (let e = 0; e < D; e++) { let y = 0; for (let d = 0; d < D; d++) y += (z[d] - mu[d]) * P[d][e]; maha += y * y; }
      return Math.log(g.weights[k]) - 0.5 * (D * Math.log(2 * Math.PI) + maha) + g.logDet[k];
    });
  }
  function classProba(z) {  // posterior of each class (summed over its components) and log p(z)
    const lp = componentLogProb(z), top = Math.max(...lp);
    const e = lp.map((v) => Math.exp(v - top)), total = e.reduce((a, b) => a + b, 0);
    const proba = g.classes.map((c) => e.reduce((a, v, k) => a + (g.componentClasses[k] === c ? v : 0), 0) / total);
    return { proba, logDensity: top + Math.log(total) };
  }
  const colour = (c) => g.colours[String(c)];
  const map = document.getElementById("latent-map"), ctx = map.getContext("2d");
  const xy = data.points.xy;
  let lo = [Infinity, Infinity], hi = [-Infinity, -Infinity];
  xy.forEach((p) => { for (let i = 0; i < 2; i++) { lo[i] = Math.min(lo[i], p[i]); hi[i] = Math.max(hi[i], p[i]); } });
  for (let i = 0; i < 2; i++) { const m = 0.05 * (hi[i] - lo[i] || 1); lo[i] -= m; hi[i] += m; }
  const toPx = (p) => [(p[0] - lo[0]) / (hi[0] - lo[0]) * map.width, (1 - (p[1] - lo[1]) / (hi[1] - lo[1])) * map.height];
  const toPlane = (px, py) => [lo[0] + px / map.width * (hi[0] - lo[0]), lo[1] + (1 - py / map.height) * (hi[1] - lo[1])];
  const background = document.createElement("canvas");
  function drawBackground() {
    background.width = map.width; background.height = map.height;
    const b = background.getContext("2d"), cell = 8;
    for (let px = 0; px < map.width; px += cell) for (let py = 0; py < map.height; py += cell) {
      const { proba } = classProba(lift(toPlane(px + cell / 2, py + cell / 2)));
      b.fillStyle = colour(g.classes[proba.indexOf(Math.max(...proba))]); b.globalAlpha = 0.12; b.fillRect(px, py, cell, cell);
    }
    b.globalAlpha = 0.5;
    xy.forEach((p, i) => { const [x, y] = toPx(p); b.fillStyle = colour(data.points.cls[i]); b.fillRect(x - 1, y - 1, 2, 2); });
    b.globalAlpha = 1; b.lineWidth = 1.5;
    data.ellipses.forEach((e) => { b.strokeStyle = colour(e.class); b.beginPath(); e.points.forEach((p, i) => { const [x, y] = toPx(p); i ? b.lineTo(x, y) : b.moveTo(x, y); }); b.closePath(); b.stroke(); });
  }
  function drawImage(canvas, pixels, x0 = 0, size = canvas.height) {
    const c = canvas.getContext("2d"), img = c.createImageData(W, H);
    for (let i = 0; i < H * W; i++) { const v = Math.round(pixels[i] * 255); img.data.set([v, v, v, 255], 4 * i); }
    const tmp = document.createElement("canvas"); tmp.width = W; tmp.height = H; tmp.getContext("2d").putImageData(img, 0, 0);
    c.imageSmoothingEnabled = false; c.drawImage(tmp, x0, 0, size * W / H, size);
  }
  const state = { last: null, pathStart: null };
  function show(p) {
    const z = lift(p), pixels = decode(z), { proba, logDensity } = classProba(z);
    drawImage(decodedCanvas, pixels);
    let text = g.classes.map((c, i) => `class ${c}: ${(100 * proba[i]).toFixed(1)}%`).join("\n");
    if (data.novelty) {
      const score = Math.max((-logDensity - data.novelty.mean) / data.novelty.std, 0);
      text += `\nlatent novelty: ${score.toFixed(2)}` + (score > data.novelty.threshold ? " (no known class)" : "");
    }
    document.getElementById("probabilities").textContent = text;
    state.last = { plane: p, z, pixels: Array.from(pixels), proba };
    ctx.clearRect(0, 0, map.width, map.height); ctx.drawImage(background, 0, 0);
    const [x, y] = toPx(p); ctx.strokeStyle = "#000"; ctx.strokeRect(x - 4, y - 4, 8, 8);
  }
  const pointer = (ev) => { const r = map.getBoundingClientRect(); return toPlane((ev.clientX - r.left) * map.width / r.width, (ev.clientY - r.top) * map.height / r.height); };
  map.addEventListener("pointermove", (ev) => show(pointer(ev)));
  map.addEventListener("pointerdown", (ev) => show(pointer(ev)));
  map.addEventListener("click", (ev) => {
    const p = pointer(ev);
    if (document.getElementById("path-mode").checked) {
      if (!state.pathStart) { state.pathStart = p; return; }
      const a = state.pathStart, strip = document.getElementById("path-strip"); state.pathStart = null;
      const step = strip.height * W / H;  // one image's drawn width: images need not be square
      strip.width = __STEPS__ * step; strip.style.display = "block"; strip.getContext("2d").clearRect(0, 0, strip.width, strip.height);
      for (let s = 0; s < __STEPS__; s++) {
        const t = s / (__STEPS__ - 1);
        drawImage(strip, decode(lift([a[0] + t * (p[0] - a[0]), a[1] + t * (p[1] - a[1])])), s * step, strip.height);
      }
      return;
    }
    const cxy = data.clickable.xy; let best = -1, dist = Infinity;
    cxy.forEach((q, i) => { const [x, y] = toPx(q), [u, v] = toPx(p), d = (x - u) ** 2 + (y - v) ** 2; if (d < dist) { dist = d; best = i; } });
    if (best < 0 || dist > 100) return;
    const raw = atob(data.clickable.images), original = new Float32Array(H * W);
    for (let i = 0; i < H * W; i++) original[i] = raw.charCodeAt(best * H * W + i) / 255;
    const holder = document.getElementById("clicked"); holder.textContent = "training image and its reconstruction:";
    const c = document.createElement("canvas"), side = 112 * W / H; c.width = 2 * side; c.height = 112; holder.appendChild(c);
    drawImage(c, original, 0, 112); drawImage(c, decode(data.clickable.z[best]), side, 112);
  });
  drawBackground(); ctx.drawImage(background, 0, 0);
  window.vaegmmExplorer = {
    state, decode, classProba, lift, toPx, toPlane,
    timeDecode(n) { const z = lift([0, 0]), t = performance.now(); for (let i = 0; i < n; i++) decode(z); return (performance.now() - t) / n; },
  };
})();
</script>
""".replace("__STEPS__", str(PATH_STEPS))

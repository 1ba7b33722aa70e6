// Zoom and pan for the image viewer, with Panzoom (vendor/panzoom). Each pane's stage holds
// the image and its heatmap, so the overlay moves with the image. Buttons, the mouse wheel
// and the keys + / - / 0 zoom the pane that has focus, or the first pane. A file of its own,
// not an inline script: the Content-Security-Policy allows scripts from this site only.
(function () {
  if (typeof Panzoom !== "function") {
    return;
  }
  const panes = [];
  document.querySelectorAll(".viewer-pane").forEach((pane) => {
    const stage = pane.querySelector(".zoom-stage");
    const viewport = pane.querySelector(".zoom-viewport");
    if (!stage || !viewport) {
      return;
    }
    const panzoom = Panzoom(stage, { minScale: 1, maxScale: 12, step: 0.4, cursor: "grab" });
    viewport.addEventListener("wheel", panzoom.zoomWithWheel);
    pane.querySelectorAll("[data-zoom]").forEach((button) => {
      button.addEventListener("click", () => zoomBy(panzoom, button.dataset.zoom));
    });
    panes.push({ pane, panzoom });
  });
  if (panes.length === 0) {
    return;
  }

  function zoomBy(panzoom, action) {
    if (action === "in") {
      panzoom.zoomIn();
    } else if (action === "out") {
      panzoom.zoomOut();
    } else {
      panzoom.reset();
    }
  }

  const keys = { "+": "in", "=": "in", "-": "out", _: "out", "0": "reset" };
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    // Typing in a form (the withdrawal reason) must not zoom.
    if (target instanceof HTMLElement && target.closest("input, textarea, select, [contenteditable]")) {
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || !(event.key in keys)) {
      return;
    }
    const focused = target instanceof Element ? panes.find((p) => p.pane.contains(target)) : null;
    zoomBy((focused || panes[0]).panzoom, keys[event.key]);
    event.preventDefault();
  });
})();

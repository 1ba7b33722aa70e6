// The heatmap overlay's opacity follows its slider. Showing and hiding it is plain CSS (the
// checkbox), so that works without this file. A file of its own, not an inline script: the
// Content-Security-Policy allows scripts from this site only. Listening on the document keeps
// it working for image cards that htmx swaps in while scores arrive.
(function () {
  function overlayOf(control) {
    return document.getElementById(control.getAttribute("aria-controls"));
  }
  function applyOpacity(slider) {
    const overlay = overlayOf(slider);
    if (overlay) {
      overlay.style.opacity = String(slider.valueAsNumber / 100);
    }
  }
  document.addEventListener("input", (event) => {
    if (event.target instanceof HTMLInputElement && event.target.matches(".heatmap-opacity")) {
      applyOpacity(event.target);
    }
  });
  // A page restored from the browser's history keeps the sliders' positions.
  window.addEventListener("pageshow", () => {
    document.querySelectorAll(".heatmap-opacity").forEach(applyOpacity);
  });
})();

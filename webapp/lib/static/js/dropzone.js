// Drag and drop onto #dropzone fills the same file input the form submits, so the page works
// without it. A file of its own, not an inline script: the Content-Security-Policy allows
// scripts from this site only.
(function () {
  const zone = document.getElementById("dropzone");
  if (!zone) {
    return;
  }
  const input = zone.querySelector("input[type=file]");
  ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
    event.preventDefault(); zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    input.files = event.dataTransfer.files;
    document.getElementById("upload-form").requestSubmit();
  });
})();

// Keyboard shortcuts for working through the review queue without the mouse. The case page's
// "Keyboard shortcuts" list says what each key does; the queue page knows only "n" (start
// reviewing). A file of its own, not an inline script: the Content-Security-Policy allows
// scripts from this site only. Every shortcut has a link or button on the page it stands for,
// so the pages work without this file.
(function () {
  "use strict";

  const form = document.getElementById("review-form");
  const rows = form ? Array.from(form.querySelectorAll(".review-row")) : [];
  let current = -1;

  // Keys typed into the note (or any text field) are text, not shortcuts.
  function typingIn(target) {
    return (
      target instanceof HTMLElement &&
      (target.isContentEditable ||
        target.matches("textarea, select, input:not([type=radio]):not([type=checkbox])"))
    );
  }

  function imageCardOf(row) {
    return document.querySelector(
      '[data-testid="image-card"][data-image-id="' + row.dataset.imageId + '"]'
    );
  }

  function highlight(index, scroll) {
    if (!rows.length) {
      return;
    }
    current = Math.max(0, Math.min(rows.length - 1, index));
    document.querySelectorAll(".current-image").forEach((element) => {
      element.classList.remove("current-image");
      element.removeAttribute("aria-current");
    });
    const row = rows[current];
    const card = imageCardOf(row);
    for (const element of [row, card]) {
      if (element) {
        element.classList.add("current-image");
        element.setAttribute("aria-current", "true");
      }
    }
    if (scroll) {
      // The image first, then its row of the form: both end up in view where they fit.
      if (card) {
        card.scrollIntoView({ block: "nearest" });
      }
      row.scrollIntoView({ block: "nearest" });
    }
  }

  function decide(key) {
    const row = rows[current];
    const input = row && row.querySelector('[data-decision-key="' + key + '"] input');
    if (!input) {
      return false;
    }
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    if (current < rows.length - 1) {
      highlight(current + 1, true);
    }
    return true;
  }

  function follow(name) {
    const link = document.querySelector('[data-shortcut="' + name + '"]');
    if (!link) {
      return false;
    }
    window.location.assign(link.href);
    return true;
  }

  function saveAndNext() {
    const button = form && form.querySelector('[data-shortcut="save-next"]');
    if (!button) {
      return false;
    }
    form.requestSubmit(button);
    return true;
  }

  function toggleHelp() {
    const help = document.getElementById("shortcut-help");
    if (!help) {
      return false;
    }
    help.open = !help.open;
    if (help.open) {
      help.scrollIntoView({ block: "nearest" });
    }
    return true;
  }

  const DECISION_KEYS = new Set(["a", "d", "f", "r"]);

  function handle(event) {
    const target = event.target;
    if (event.key === "Enter" && event.ctrlKey) {
      return saveAndNext();
    }
    if (event.ctrlKey) {
      return false;
    }
    if (typingIn(target)) {
      if (event.key === "Escape") {
        target.blur();
        return true;
      }
      return false;
    }
    if (DECISION_KEYS.has(event.key)) {
      return decide(event.key);
    }
    switch (event.key) {
      case "j":
        highlight(current + 1, true);
        return rows.length > 0;
      case "k":
        highlight(current - 1, true);
        return rows.length > 0;
      case "ArrowDown":
      case "ArrowUp":
        // On a radio button the arrows choose among its decisions, as browsers make them.
        if (target instanceof HTMLInputElement && target.type === "radio") {
          return false;
        }
        highlight(current + (event.key === "ArrowDown" ? 1 : -1), true);
        return rows.length > 0;
      case "Enter":
        // A focused button, link or summary does what Enter asks of it.
        if (target instanceof Element && target.closest("button, a, summary")) {
          return false;
        }
        return saveAndNext();
      case "n":
        return follow("next-case");
      case "?":
        return toggleHelp();
      default:
        return false;
    }
  }

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing || event.altKey || event.metaKey) {
      return;
    }
    if (handle(event)) {
      event.preventDefault();
    }
  });

  // Clicking or tabbing into a row makes its image the current one.
  if (form) {
    form.addEventListener("focusin", (event) => {
      const index = rows.findIndex((row) => row.contains(event.target));
      if (index >= 0 && index !== current) {
        highlight(index, false);
      }
    });
  }

  // The panel scrolls within itself, and its buttons stick to its bottom. The stylesheet can
  // size it only for once it has stuck to the window's top; until the page is scrolled that
  // far, the panel starts lower and its bottom, buttons and all, would lie below the window.
  // So it is given the height the window leaves below its top, on load and as the page moves.
  const panel = document.getElementById("review-panel");
  let fitting = false;
  function fitPanel() {
    fitting = false;
    if (getComputedStyle(panel).position !== "sticky") {
      // Stacked under the images on a narrow screen: it takes the height it needs.
      panel.style.maxHeight = "";
      return;
    }
    const top = Math.max(panel.getBoundingClientRect().top, 0);
    const margin = parseFloat(getComputedStyle(panel).top) || 0;
    panel.style.maxHeight = Math.max(window.innerHeight - top - margin, 240) + "px";
  }
  function fitPanelSoon() {
    if (!fitting) {
      fitting = true;
      window.requestAnimationFrame(fitPanel);
    }
  }
  if (panel && form) {
    fitPanel();
    window.addEventListener("scroll", fitPanelSoon, { passive: true });
    window.addEventListener("resize", fitPanelSoon);
  }

  // Start on the first image still waiting for a decision: neither decided in an earlier save
  // (after a reload no radio is checked, so the standing review is what tells) nor chosen now.
  if (rows.length) {
    const waiting = rows.findIndex(
      (row) =>
        !row.querySelector('[data-testid="standing-review"]') && !row.querySelector("input:checked")
    );
    highlight(waiting >= 0 ? waiting : 0, false);
  }
})();

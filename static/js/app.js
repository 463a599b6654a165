// Live parts of a page are re-rendered by htmx; keep what the person was doing in them:
// disclosures they opened and text they were typing survive the swap.
(function () {
  "use strict";
  let kept = null;

  document.addEventListener("htmx:beforeSwap", function (event) {
    const target = event.detail.target;
    if (!target) return;
    const focused = document.activeElement;
    kept = {
      open: Array.from(target.querySelectorAll("details[open][id]")).map((d) => d.id),
      typed: Array.from(target.querySelectorAll("input[id], textarea[id]"))
        .filter((field) => field.value && field.type !== "hidden" && field.type !== "checkbox")
        .map((field) => [field.id, field.value]),
      focusId: focused && target.contains(focused) ? focused.id : "",
    };
  });

  document.addEventListener("htmx:afterSwap", function () {
    if (!kept) return;
    kept.open.forEach(function (id) {
      const details = document.getElementById(id);
      if (details) details.open = true;
    });
    kept.typed.forEach(function ([id, value]) {
      const field = document.getElementById(id);
      if (field && !field.value) field.value = value;
    });
    if (kept.focusId) {
      const field = document.getElementById(kept.focusId);
      if (field) field.focus();
    }
    kept = null;
  });
})();

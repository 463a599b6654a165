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

// The Content-Security-Policy allows no inline handlers and no eval, so what pages once wrote
// inline lives here, by event delegation on the document.
(function () {
  "use strict";

  // A form with data-confirm asks before it submits (forms that work without htmx; htmx
  // requests use hx-confirm). Without JavaScript the form submits as it always did.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });

  // Polls (hx-trigger="every Ns") wait while the tab is hidden; they pick up at the next tick
  // once it is visible again. This replaces the [document.visibilityState === 'visible']
  // trigger filter, which htmx can only run through eval.
  const POLL = /(^|,)\s*every\s/;
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (document.visibilityState === "visible") return;
    const config = event.detail.requestConfig || {};
    const elt = event.detail.elt;
    if (config.triggeringEvent || !elt || !POLL.test(elt.getAttribute("hx-trigger") || "")) {
      return;
    }
    event.preventDefault();
  });
})();

// The upgrade page swaps a step, a phase header or the actions region in place (also out of
// band). When the control that had focus went away with the swap (the Done button of a step
// now done), focus moves to the region that replaced it, so the next Tab goes on from there
// instead of from the top of the page. Focus elsewhere (a poll updating the runs) is left alone.
(function () {
  "use strict";
  let lost = null;

  function remember(event) {
    const target = event.detail.target;
    const focused = document.activeElement;
    if (!target || !target.id || !focused || focused === document.body) return;
    if (target.contains(focused)) lost = { region: target.id, control: focused.id || "" };
  }
  document.addEventListener("htmx:beforeSwap", remember);
  document.addEventListener("htmx:oobBeforeSwap", remember);

  // At once after the swap (out-of-band regions are in place by then), not after the settle
  // delay: in between, focus would sit on <body> and a key pressed then would start from the
  // top of the page.
  document.addEventListener("htmx:afterSwap", function () {
    if (!lost) return;
    const was = lost;
    lost = null;
    const now = document.activeElement;
    if (now && now !== document.body && document.contains(now)) return;
    const control = was.control && document.getElementById(was.control);
    if (control && control.getClientRects().length) {
      control.focus();
      if (document.activeElement === control) return;
    }
    const region = document.getElementById(was.region);
    if (!region) return;
    if (!region.hasAttribute("tabindex")) region.setAttribute("tabindex", "-1");
    region.focus();
  });
})();

// The top bar is a menu on a phone: folded at load there (open without JavaScript).
document.addEventListener("DOMContentLoaded", () => {
  const menu = document.querySelector(".topbar .menu");
  if (menu && window.matchMedia("(max-width: 700px)").matches) menu.open = false;
});

// Live regions that refresh themselves can be paused (WCAG 2.2.2): a button with
// data-pauses="<id of the polled element>" stops its polls and starts them again. Someone who
// asked their system for reduced motion finds them paused, with the button to resume.
(function () {
  "use strict";
  const paused = new Set();

  function label(button) {
    const stopped = paused.has(button.dataset.pauses);
    button.setAttribute("aria-pressed", stopped ? "true" : "false");
    button.textContent = stopped ? "Resume live updates" : "Pause live updates";
    const note = button.dataset.note && document.getElementById(button.dataset.note);
    if (note) note.textContent = stopped ? "Live updates are paused." : "";
  }

  document.addEventListener("DOMContentLoaded", function () {
    const still = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    document.querySelectorAll("button[data-pauses]").forEach(function (button) {
      if (still) paused.add(button.dataset.pauses);
      button.hidden = false;
      label(button);
    });
  });

  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("button[data-pauses]");
    if (!button) return;
    const id = button.dataset.pauses;
    if (paused.has(id)) paused.delete(id);
    else paused.add(id);
    label(button);
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    const elt = event.detail.elt;
    const config = event.detail.requestConfig || {};
    if (elt && elt.id && paused.has(elt.id) && !config.triggeringEvent) event.preventDefault();
  });
})();

// When a run in the runs panel finishes (the panel is polled), the page's polite live region
// says so in words: "Run #12 Health check: Passed." or "... Failed: GET /health answered 503".
// Focus stays where it was.
(function () {
  "use strict";
  const ACTIVE = ["queued", "running"];
  let before = null;

  function statuses(panel) {
    const seen = {};
    panel.querySelectorAll("li.run[id]").forEach(function (li) {
      seen[li.id] = ACTIVE.some((s) => li.classList.contains(s)) ? "active" : "finished";
    });
    return seen;
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    const target = event.detail.target;
    if (target && target.id === "runs") before = statuses(target);
  });

  document.addEventListener("htmx:afterSettle", function () {
    if (!before) return;
    const was = before;
    before = null;
    const panel = document.getElementById("runs");
    const region = document.getElementById("page-message");
    if (!panel || !region) return;
    const said = [];
    Object.entries(statuses(panel)).forEach(function ([id, now]) {
      if (was[id] !== "active" || now !== "finished") return;
      const li = document.getElementById(id);
      const what = li.querySelector(".run-what .wrap");
      const status = li.querySelector(".run-status");
      const reason = li.querySelector(".run-reason");
      const why = reason ? reason.firstChild && reason.firstChild.textContent.trim() : "";
      said.push(
        "Run " + id.replace("run-", "#") + " " + (what ? what.textContent.trim() : "") + ": " +
        (status ? status.textContent.trim() : "finished") + (why ? ": " + why : "") + ".",
      );
    });
    if (!said.length) return;
    const p = document.createElement("p");
    p.className = "msg";
    p.textContent = said.join(" ");
    region.replaceChildren(p);
  });
})();

// A session due for renewal with the provider (mycelia_ops.oidc.SessionRenewal) answers an
// htmx GET with no data and the event "mycelia:renew-sign-in": nothing on the page changes, so
// what the person typed stays. The page's polls pause and a banner offers the renewal; its
// link is this page's own address, which renews through the provider and comes back here.
(function () {
  "use strict";
  let due = false;

  document.addEventListener("mycelia:renew-sign-in", function () {
    const region = document.getElementById("renew-sign-in");
    if (due || !region) return;
    due = true;
    const link = document.createElement("a");
    link.href = window.location.href;
    link.textContent = "Renew sign-in";
    const p = document.createElement("p");
    p.className = "msg renew";
    p.append(
      "Your sign-in needs renewing to keep this page live. Live updates are paused until " +
      "then. Renewing reloads this page: send anything you typed first. ",
      link,
    );
    region.replaceChildren(p);
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    const config = event.detail.requestConfig || {};
    if (due && !config.triggeringEvent) event.preventDefault(); // a poll: paused
  });
})();

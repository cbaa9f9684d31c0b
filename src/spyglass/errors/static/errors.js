// Issues pages, small enhancements (everything works without them):
// - select all / none, shift-click ranges, and the bulk bar's "N selected" state
// - "/" focuses the search box; Escape leaves it
// - <details class="menu">: closes when clicking elsewhere or choosing an item
(function () {
  "use strict";

  function boxes(form) { return Array.prototype.slice.call(form.querySelectorAll("input[name=issue]")); }

  function refresh(form) {
    var all = boxes(form);
    var picked = all.filter(function (b) { return b.checked; });
    var master = form.querySelector("[data-select-all]");
    if (master) {
      master.checked = picked.length > 0 && picked.length === all.length;
      master.indeterminate = picked.length > 0 && picked.length < all.length;
    }
    var count = form.querySelector("[data-selected-count]");
    if (count) count.textContent = picked.length ? picked.length + " selected" : "";
    form.querySelectorAll("[data-needs-selection]").forEach(function (el) {
      var need = parseInt(el.getAttribute("data-needs-selection"), 10) || 1;
      el.disabled = picked.length < need;
    });
    all.forEach(function (b) { b.closest(".issue-row").classList.toggle("selected", b.checked); });
  }

  var last = null;
  document.addEventListener("click", function (event) {
    var box = event.target.closest("input[name=issue]");
    if (box) {
      var form = box.form;
      if (event.shiftKey && last && last.form === form) {
        var all = boxes(form), a = all.indexOf(last), b = all.indexOf(box);
        all.slice(Math.min(a, b), Math.max(a, b) + 1).forEach(function (x) { x.checked = box.checked; });
      }
      last = box;
      refresh(form);
    }
    var master = event.target.closest("[data-select-all]");
    if (master) {
      boxes(master.form).forEach(function (b) { b.checked = master.checked; });
      refresh(master.form);
    }
    document.querySelectorAll("details.menu[open]").forEach(function (d) {
      if (!d.contains(event.target) || event.target.closest(".menu-list button, .menu-list a")) d.removeAttribute("open");
    });
  });

  document.addEventListener("keydown", function (event) {
    var search = document.querySelector("[data-issue-search]");
    var typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement && document.activeElement.tagName);
    if (event.key === "/" && search && !typing) {
      event.preventDefault();
      search.focus();
      search.setSelectionRange(search.value.length, search.value.length);
    } else if (event.key === "Escape") {
      if (document.activeElement === search) search.blur();
      document.querySelectorAll("details.menu[open]").forEach(function (d) { d.removeAttribute("open"); });
    }
  });

  function init(root) {
    (root || document).querySelectorAll("form[data-bulk]").forEach(refresh);
  }
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSettle", function () { init(document); });
})();

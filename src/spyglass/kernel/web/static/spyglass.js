// Small progressive enhancements for the Spyglass shell; every page works without them.
// - <select data-navigate>: go to the selected option's value (org/project switchers)
// - <select data-autosubmit>: submit the surrounding form on change
// - [data-copy]: copy its value to the clipboard
// - <form data-confirm="...">: ask before submitting
// - [data-toggle-sidebar]: open/close the sidebar on small screens
(function () {
  "use strict";

  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches("select[data-navigate]") && el.value) {
      window.location.href = el.value;
    } else if (el.matches("select[data-autosubmit]") && el.form) {
      el.form.requestSubmit ? el.form.requestSubmit() : el.form.submit();
    }
  });

  document.addEventListener("click", function (event) {
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      copyText(copy.getAttribute("data-copy")).then(function () {
        var label = copy.querySelector("span");
        if (!label) return;
        var before = label.textContent;
        label.textContent = "Copied";
        copy.classList.add("copied");
        setTimeout(function () { label.textContent = before; copy.classList.remove("copied"); }, 1500);
      });
      return;
    }
    if (event.target.closest("[data-toggle-sidebar]")) {
      document.body.classList.toggle("sidebar-open");
    }
  });

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
    return Promise.resolve();
  }
})();

// flask-flows: show the settings page's times in the visitor's own time zone and words.
// The server writes them in UTC (it cannot know the zone); without this file they stay so.
(function () {
  "use strict";

  function localise() {
    if (!window.Intl || !Intl.DateTimeFormat) return;
    var format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
    document.querySelectorAll("time[data-flows-local-time]").forEach(function (node) {
      var when = new Date(node.getAttribute("datetime"));
      if (!isNaN(when.getTime())) {
        node.textContent = format.format(when);
        node.title = node.getAttribute("datetime").replace("T", " ").replace("Z", " UTC");
      }
    });
  }

  document.addEventListener("DOMContentLoaded", localise);
})();

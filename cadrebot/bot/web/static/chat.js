/* The web chat's only script (htmx does the rest; the chat also works without JavaScript).
   Plain ES5, so old in-app browsers run it too. */
(function () {
  "use strict";
  // A refusal (too many messages, an expired form token) comes as a polite fragment with a
  // 4xx status: htmx does not swap those by default, so the user would see nothing.
  var SHOWN = { 400: true, 403: true, 413: true, 429: true };
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr && event.detail.xhr.status;
    if (SHOWN[status]) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  // No connection (a phone between towers): say so in the transcript.
  document.addEventListener("htmx:sendError", function () {
    var transcript = document.getElementById("transcript");
    if (!transcript) { return; }
    var notice = document.createElement("p");
    notice.className = "notice error chat-refused";
    notice.setAttribute("role", "alert");
    notice.textContent = "网络连接失败，消息没有发出，请检查网络后再试。";
    transcript.appendChild(notice);
  });
})();

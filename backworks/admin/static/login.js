// Reopen the dashboard with the token this tab already knows (the page strips it from the address bar).
(function () {
  "use strict";
  var known = sessionStorage.getItem("backworks-admin-token");
  var wrong = document.getElementById("why").textContent.indexOf("wrong") >= 0;
  if (known && !wrong) {
    location.replace(location.pathname + "?token=" + encodeURIComponent(known));
  } else if (wrong) {
    sessionStorage.removeItem("backworks-admin-token");
  }
})();

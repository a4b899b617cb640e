// The token goes in the POST body, never in a URL (URLs end up in access logs and history).
// This tab keeps it in sessionStorage so the dashboard's API calls and a reload can use it again.
(function () {
  "use strict";
  var TOKEN_KEY = "backworks-admin-token";
  var form = document.getElementById("login");
  var field = form.elements.token;
  var wrong = document.getElementById("why").textContent.indexOf("wrong") >= 0;
  if (new URLSearchParams(location.search).has("token")) {
    history.replaceState(null, "", location.pathname);  // an old ?token= link: not used, not kept
  }
  form.addEventListener("submit", function () {
    sessionStorage.setItem(TOKEN_KEY, field.value);
  });
  var known = sessionStorage.getItem(TOKEN_KEY);
  if (wrong) {
    sessionStorage.removeItem(TOKEN_KEY);
  } else if (known) {
    field.value = known;
    form.submit();
  }
})();

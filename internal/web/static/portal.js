// Portal's one script: optional, every page works without it.
// It tells the server the browser's time zone (a cookie the pages read to
// show dates), unless the user chose one on the account page.
(function () {
  "use strict";
  if (document.cookie.split("; ").some(function (c) { return c.indexOf("portal_tz=") === 0; })) return;
  try {
    var tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (tz && /^[A-Za-z0-9_+\-\/]{1,64}$/.test(tz)) {
      document.cookie = "portal_tz=" + tz + "; path=/; max-age=31536000; samesite=lax";
    }
  } catch (e) { /* no Intl: dates stay in UTC */ }
})();

// Loaded by pages of the book that hold ipywidgets state, between require.js and embed-amd.js
// (see nb_ipywidgets_js in _config.yml; book/_tools/fetch_widget_js.py puts this file next to
// the other two).
(function () {
  "use strict";
  // The html-manager loads its Font Awesome files relative to the URL RequireJS gives its
  // modules, which by default is the page's folder. Point its modules at this folder instead.
  var here = document.currentScript.src.replace(/[?#].*$/, "").replace(/[^/]*$/, "");
  window.requirejs.config({ paths: { "@jupyter-widgets/html-manager/dist": here + "." } });

  // ipywidgets typesets LaTeX in widget labels with the MathJax 2 call MathJax.Hub.Queue and
  // writes inline math as $...$. The book runs MathJax 3, which has no Hub and reads \(...\):
  // bridge that one call. (Without MathJax on the page, ipywidgets skips typesetting.)
  document.addEventListener("DOMContentLoaded", function () {
    var mj = window.MathJax;
    if (!mj || mj.Hub || !mj.startup) {
      return;
    }
    mj.Hub = {
      Queue: function (cmd) {
        var el = cmd && cmd[0] === "Typeset" ? cmd[2] : null;
        if (!el) {
          return;
        }
        mj.startup.promise.then(function () {
          if (el.children.length === 0) {
            el.textContent = el.textContent.replace(/\$([^$]+)\$/g, "\\($1\\)");
          }
          return mj.typesetPromise([el]);
        });
      },
    };
  });
})();

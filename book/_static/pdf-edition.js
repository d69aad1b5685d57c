// The theme's ".pdf" download button prints the page. The book has a real PDF edition
// (`make pdf`), published beside the HTML as mfbook.pdf at the site's root (`make site`):
// point the button there. Loaded on every page (_config.yml: html_js_files).
document.addEventListener("DOMContentLoaded", () => {
  const root = document.documentElement.dataset.content_root || "";
  for (const button of document.querySelectorAll(".btn-download-pdf-button")) {
    button.onclick = () => {
      window.location.href = root + "mfbook.pdf";
    };
    button.title = "The whole book as a PDF";
    button.setAttribute("data-bs-original-title", button.title);
  }
});

// The shop page's embed snippet is selected with one click, ready to copy (a static file: the
// Content-Security-Policy allows no inline script or event handler).
document.addEventListener("click", (event) => {
  if (event.target.matches("textarea[data-select-on-click]")) event.target.select();
});

// The receipt's print button (a script file: the Content-Security-Policy allows no inline handlers).
(function () {
  const button = document.getElementById("print");
  if (button) { button.addEventListener("click", () => window.print()); }
})();

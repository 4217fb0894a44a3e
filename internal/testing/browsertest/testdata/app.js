// Changes the text when the button is clicked, and says so on the console,
// so that the test sees a script from a file run, a click land, and the
// console reach the fixture's log.
document.getElementById("go").addEventListener("click", function () {
  var state = document.getElementById("state");
  state.textContent = "clicked";
  state.setAttribute("data-state", "clicked");
  console.info("state changed to clicked");
});

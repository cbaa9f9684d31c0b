// The "shop" of the test page: named functions in their own file, so that the errors the SDK
// captures carry a JavaScript stack trace with real function names, files and lines.
"use strict";

function applyCoupon(cart) {
  // cart.coupon is missing: TypeError, as in a real checkout bug.
  return cart.coupon.code.toUpperCase();
}

function checkoutTotal() {
  const cart = { items: [{ sku: "tea", price: 4.5 }] };
  const code = applyCoupon(cart);
  return code;
}

async function chargeCard(amount) {
  await new Promise((resolve) => setTimeout(resolve, 10));
  throw new Error("payment declined by issuer for amount " + amount);
}

document.getElementById("checkout").addEventListener("click", function onCheckout() {
  Sentry.addBreadcrumb({ category: "cart", message: "checkout clicked", level: "info" });
  checkoutTotal();
});

document.getElementById("pay").addEventListener("click", function onPay() {
  chargeCard(42); // the rejection is never handled: unhandledrejection
});

document.getElementById("typing").addEventListener("input", function onInput(e) {
  document.getElementById("echo").textContent = e.target.value;
});

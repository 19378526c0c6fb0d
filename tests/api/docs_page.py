"""The docs page (/docs) in headless Chromium, as a person would use it.

Checks, one PASS/FAIL line each:
  1. every operation of the OpenAPI document renders as an operation block, and no other;
  2. the page offers "Authorize" for the document's security scheme;
  3. with the admin token authorized there, "Try it out" on GET /admin/audit answers 200.

usage: docs_page.py --base http://127.0.0.1:PORT --token TOKEN
                    [--spec URL_OR_FILE] [--screenshot FILE]

--spec compares the page with another document than BASE/openapi.json (to see the check
fail, give it a document with an operation the page does not have). Exit status: 0 when
every check passed, 1 otherwise.
"""

import argparse
import json
import sys
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
WAIT = 30

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)


def load_spec(source):
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=10) as response:
            return json.load(response)
    with open(source, encoding="utf-8") as f:
        return json.load(f)


def operations_in(spec):
    return {(method.upper(), path) for path, item in spec.get("paths", {}).items() for method in item if method in METHODS}


def rendered_operations(driver):
    found = []
    for block in driver.find_elements(By.CSS_SELECTOR, ".opblock"):
        method = block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text.strip().upper()
        path_element = block.find_element(By.CSS_SELECTOR, ".opblock-summary-path")
        path = path_element.get_attribute("data-path") or path_element.text.replace("\u200b", "").strip()
        found.append((method, path))
    return found


def browser(chromium, chromedriver):
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,2400"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)


def try_audit_with_token(driver, token):
    """Authorize with `token`, then "Try it out" → "Execute" on GET /admin/audit; the status shown."""
    wait = WebDriverWait(driver, WAIT)
    driver.find_element(By.CSS_SELECTOR, "button.btn.authorize").click()
    field = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".modal-ux .auth-container input")))
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, ".modal-ux .auth-btn-wrapper button.authorize").click()
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".modal-ux .auth-btn-wrapper .btn-done"))).click()
    wait.until(ec.invisibility_of_element_located((By.CSS_SELECTOR, ".modal-ux")))
    operation = driver.find_element(By.ID, "operations-Admin-readAuditTrail")
    operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait.until(lambda d: operation.find_elements(By.CSS_SELECTOR, ".try-out__btn"))[0].click()
    wait.until(lambda d: operation.find_elements(By.CSS_SELECTOR, "button.execute"))[0].click()
    status = wait.until(
        lambda d: operation.find_elements(By.CSS_SELECTOR, ".live-responses-table .response .response-col_status")
    )
    return status[0].text.strip().split()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the server, e.g. http://127.0.0.1:3000")
    parser.add_argument("--token", required=True, help="an admin access token")
    parser.add_argument("--spec", help="the document to compare with (default: BASE/openapi.json)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--screenshot", help="save a picture of the page here")
    args = parser.parse_args()
    base = args.base.rstrip("/")

    expected = operations_in(load_spec(args.spec or f"{base}/openapi.json"))
    try:
        driver = browser(args.chromium, args.chromedriver)
    except WebDriverException as e:
        print(f"FAIL starting Chromium: {e.msg}", flush=True)
        return 1
    try:
        driver.get(f"{base}/docs")
        try:
            WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"))
        except TimeoutException:
            pass
        rendered = rendered_operations(driver)
        missing = sorted(expected - set(rendered))
        extra = sorted(set(rendered) - expected)
        duplicated = len(rendered) - len(set(rendered))
        detail = f"{len(expected)} in the document, {len(rendered)} on the page"
        if missing:
            detail += "; missing: " + ", ".join(f"{m} {p}" for m, p in missing)
        if extra:
            detail += "; not in the document: " + ", ".join(f"{m} {p}" for m, p in extra)
        if duplicated:
            detail += f"; {duplicated} shown twice"
        check("every operation renders", bool(expected) and not missing and not extra and not duplicated, detail)

        buttons = driver.find_elements(By.CSS_SELECTOR, "button.btn.authorize")
        check("the page offers Authorize", len(buttons) == 1, f"{len(buttons)} Authorize button(s)")

        if args.screenshot:
            driver.save_screenshot(args.screenshot)
        if buttons:
            try:
                status = try_audit_with_token(driver, args.token)
                check("Authorize, then Try it out on GET /admin/audit", status == "200", f"status {status}")
            except (TimeoutException, WebDriverException) as e:
                check("Authorize, then Try it out on GET /admin/audit", False, type(e).__name__)
    finally:
        driver.quit()
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())

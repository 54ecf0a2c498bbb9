"""`/docs` and `/redoc` work without the internet: every asset they load comes from the app."""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest


class _Assets(HTMLParser):
    """The URLs a page loads by itself: scripts, stylesheets, icons, images."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("script", "img") and values.get("src"):
            self.urls.append(str(values["src"]))
        if tag == "link" and values.get("href"):
            self.urls.append(str(values["href"]))


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_from_the_app(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    parser = _Assets()
    parser.feed(html)
    assert parser.urls, "the page loads its UI from assets"
    # No absolute URL anywhere in the page: nothing is fetched from a CDN or font service.
    assert not re.findall(r"""(?:src|href)=["']?(?:https?:)?//""", html)
    assert "fonts.googleapis" not in html
    for url in parser.urls:
        assert url.startswith("/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
    assert "/openapi.json" in html
    assert (await client.get("/openapi.json")).status_code == 200


async def test_swagger_ui_makes_no_validator_request(client: httpx.AsyncClient) -> None:
    html = (await client.get("/docs")).text
    assert '"validatorUrl": null' in html


async def test_docs_assets_are_the_bundles(client: httpx.AsyncClient) -> None:
    swagger = await client.get("/docs/assets/swagger-ui-bundle.js")
    redoc = await client.get("/docs/assets/redoc.standalone.js")
    assert b"SwaggerUIBundle" in swagger.content
    assert b"Redoc" in redoc.content
    assert b"cdn.redoc.ly" not in redoc.content  # its logo would be the one outside request
    assert (await client.get("/docs/assets/nothing-here.js")).status_code == 404


# -- the README and the Makefile say what the tools do --------------------------------------------

_ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_cli_table_lists_every_command() -> None:
    import typer

    from service.cli import app

    readme = (_ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("### Operator CLI") : readme.index("**Importing leads from CSV.**")]
    listed = set(re.findall(r"^\| `([a-z-]+)", table, re.M))
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert commands == listed


def test_make_help_lists_every_target_and_clean_matches_the_readme() -> None:
    makefile = (_ROOT / "Makefile").read_text(encoding="utf-8")
    phony = re.search(r"^\.PHONY: (.*)$", makefile, re.M)
    assert phony is not None
    helped = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=_ROOT, capture_output=True, text=True
    ).stdout
    assert {t for t in phony.group(1).split() if t != "help"} <= set(
        re.findall(r"^make (\w+)", helped, re.M)
    )
    clean = re.search(r"^clean:\n\trm -rf (.*)$", makefile, re.M)
    assert clean is not None
    removed = clean.group(1).replace("$(VENV)", ".venv").split()
    readme = (_ROOT / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `make clean` |"))
    assert all(f"`{path}`" in row for path in removed), (removed, row)
    assert ".data" not in removed  # the embedded database survives `make clean`

"""The React bindings as an adopter gets them: `npm pack` of the client, the demo's types
and `@aiohttp-realtime/react`, installed beside react 19 in a scratch app outside the
tree (no workspace, no source path), where:

- a strict TSX file using `useTopic("sessions.state", …)`, `useRequest` and
  `useConnectionStatus` compiles, and each misuse (a reducer of another topic, a wrong
  event type, an unknown topic, wrong params) is marked `@ts-expect-error`, so the
  compile fails the day one of them is accepted;
- the compiled app runs in Node: react-dom/server renders a component that uses the
  hooks (the packages' ES modules, their `exports` and React's JSX runtime resolve).
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.test_packages import ROOT, _clean_env, _run, npm_pack

REACT_DEPS = {"react": "19.3.1", "react-dom": "19.3.1"}
DEV_DEPS = {
    "typescript": "5.9.3",
    "@types/react": "19.3.3",
    "@types/react-dom": "19.3.0",
    "@types/node": "20.19.43",
}
WORKSPACES = {
    "frontend-client": "aiohttp-realtime-client",
    "frontend-types": "aiohttp-realtime-demo-types",
    "frontend-react": "aiohttp-realtime-react",
}

APP = """
import { RealtimeClient, type WebSocketConstructor } from "@aiohttp-realtime/client";
import type { Methods, Session, TerminalsEvent, Topics } from "@aiohttp-realtime/demo-types";
import {
  RealtimeProvider,
  type TopicReducer,
  useConnectionStatus,
  useRequest,
  useTopic,
} from "@aiohttp-realtime/react";
import type { ReactNode } from "react";
import { renderToString } from "react-dom/server";

declare module "@aiohttp-realtime/react" {
  interface Register {
    topics: Topics;
    methods: Methods;
  }
}

const sessions: TopicReducer<Topics["sessions.state"], Session[]> = {
  snapshot: (snapshot) => snapshot.sessions,
  event: (list, e) =>
    e.op === "upsert"
      ? [...list.filter((s) => s.id !== e.session.id), e.session]
      : list.filter((s) => s.id !== e.id),
};

function Sessions(): ReactNode {
  const { state, status, seq } = useTopic("sessions.state", sessions);
  const titles = useTopic("sessions.state", {
    snapshot: (s) => s.sessions.map((x) => x.title),
    event: (list, e) => (e.op === "upsert" ? [...list, e.session.title] : list),
  });
  const create = useRequest("sessions.create");
  const connection = useConnectionStatus();
  async function add(): Promise<string | undefined> {
    const outcome = await create.call({ title: "Deploy" });
    return outcome.ok ? outcome.result.id : outcome.error.code;
  }
  void add;
  return (
    <p data-status={status}>
      {state === undefined ? "Loading" : state.length} {seq ?? "-"} {titles.state?.join() ?? "-"}{" "}
      {connection.state}
    </p>
  );
}

export function Misuse({ id }: { id: string }): ReactNode {
  // @ts-expect-error -- a reducer of sessions.state given for terminals.state
  useTopic("terminals.state", sessions);
  useTopic("sessions.state", {
    snapshot: (s) => s.sessions,
    // @ts-expect-error -- a terminals event is not a sessions.state event
    event: (list, e: TerminalsEvent) => list,
  });
  // @ts-expect-error -- no such topic
  useTopic("sessions.nope", sessions);
  // @ts-expect-error -- an activity snapshot has no `sessions`
  useTopic(`sessions.activity:${id}`, { snapshot: (s) => s.sessions, event: (m) => m });
  const create = useRequest("sessions.create");
  // @ts-expect-error -- sessions.create takes a title
  void create.call({ name: "x" });
  return null;
}

/** Never opened: the client is not connected in this render. */
const NoSocket = class {
  constructor() {
    throw new Error("no socket in this test");
  }
} as unknown as WebSocketConstructor;
const url = "ws://127.0.0.1:9/api/realtime";
const client = new RealtimeClient<Topics, Methods>({ url, WebSocket: NoSocket });
console.log(
  renderToString(
    <RealtimeProvider client={client}>
      <Sessions />
    </RealtimeProvider>,
  ),
);
"""

TSCONFIG = {
    "compilerOptions": {
        "target": "ES2022",
        "module": "NodeNext",
        "moduleResolution": "NodeNext",
        "lib": ["ES2022", "DOM"],
        "jsx": "react-jsx",
        "strict": True,
        "exactOptionalPropertyTypes": True,
        "verbatimModuleSyntax": True,
        "noUncheckedIndexedAccess": True,
        "skipLibCheck": False,
        "types": ["node"],
        "outDir": "dist",
        "rootDir": "src",
    },
    "include": ["src"],
}


@pytest.fixture(scope="module")
def tarballs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dist = tmp_path_factory.mktemp("npm")
    assert ROOT not in dist.parents
    npm_pack(tuple(WORKSPACES), dist)  # the client first: packing the React package builds on its dist/
    packed = {p.name.rsplit("-", 1)[0]: p for p in dist.glob("*.tgz")}
    assert set(packed) == set(WORKSPACES.values()), packed
    return packed


def test_the_react_tarball_holds_the_build_and_no_tests(tarballs: dict[str, Path]) -> None:
    with tarfile.open(tarballs["aiohttp-realtime-react"]) as tgz:
        names = set(tgz.getnames())
        manifest = json.loads(tgz.extractfile("package/package.json").read())  # type: ignore[union-attr]
    built = {"package/dist/index.js", "package/dist/index.d.ts", "package/LICENSE", "package/README.md"}
    assert built <= names
    assert not [n for n in names if n.startswith("package/test/")]
    assert manifest["peerDependencies"]["react"] == ">=18"
    assert "dependencies" not in manifest, "React and the client are the app's: peers"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, tarballs: dict[str, Path]) -> Path:
    path = tmp_path_factory.mktemp("react-app")
    deps = {
        f"@aiohttp-realtime/{name.removeprefix('aiohttp-realtime-')}": f"file:{tgz}"
        for name, tgz in tarballs.items()
    }
    package = {
        "name": "react-adopter",
        "private": True,
        "type": "module",
        "dependencies": {**deps, **REACT_DEPS},
        "devDependencies": DEV_DEPS,
    }
    (path / "package.json").write_text(json.dumps(package, indent=2))
    (path / "tsconfig.json").write_text(json.dumps(TSCONFIG, indent=2))
    (path / "src").mkdir()
    (path / "src" / "main.tsx").write_text(APP)
    npm_install = ["npm", "install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"]
    _run(*npm_install, cwd=path, env=_clean_env())
    installed = path / "node_modules" / "@aiohttp-realtime" / "react"
    assert installed.is_dir() and not installed.is_symlink(), "from the tarball, not a link to the tree"
    return path


@pytest.fixture(scope="module")
def compiled(app: Path) -> subprocess.CompletedProcess[str]:
    """One strict compile of the app (emitting dist/)."""
    return subprocess.run(["node_modules/.bin/tsc"], cwd=app, capture_output=True, text=True)


def test_a_strict_tsx_app_compiles_and_a_wrong_reducer_does_not(
    compiled: subprocess.CompletedProcess[str],
) -> None:
    # src/main.tsx marks each misuse @ts-expect-error: tsc fails ("Unused
    # '@ts-expect-error' directive") the day one of them type-checks.
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr


def test_the_compiled_app_renders_with_the_hooks_in_node(
    app: Path, compiled: subprocess.CompletedProcess[str]
) -> None:
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    result = subprocess.run(["node", "dist/main.js"], cwd=app, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    # Before any snapshot: no state yet, syncing, the client idle (nothing connects in a render).
    html = result.stdout.strip().replace("<!-- -->", "")  # React's markers between text parts
    assert html == '<p data-status="syncing">Loading - - idle</p>'

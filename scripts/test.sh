#!/usr/bin/env bash
# The project's one test command (`npm test`): installs what is missing, builds, runs the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
[ -d node_modules ] || npm ci
npm run build --silent
npm run typecheck --silent
npm run lint --silent
npx vitest run "$@"

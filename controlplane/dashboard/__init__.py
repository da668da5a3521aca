"""A read-only web dashboard of the local target's rollouts (`ctl dashboard`): server-rendered HTML,
inline SVG charts and one small script that refreshes the page while a rollout runs. Everything it
serves comes from the package itself (no CDN, no JavaScript library)."""

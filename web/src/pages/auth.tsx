// Sign up and log in. Both land on the page the person came from (`next`),
// and the login page says so when the server ended the last session.

import { useLocation } from "preact-iso";
import { useEffect, useState } from "preact/hooks";
import { api, describe, session, toError } from "../api/client";

/** Where to go after signing in: only a path of this app, never another site. */
function nextPath(query: Record<string, string>): string {
  const next = query.next ?? "";
  return next.startsWith("/") && !next.startsWith("//") ? next : "/files";
}

function AuthForm(props: { mode: "login" | "signup" }) {
  const { query, route } = useLocation();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const signup = props.mode === "signup";
  // Signed in already (another tab, a reload): straight on.
  useEffect(() => {
    if (session.signedIn) route(nextPath(query), true);
  }, []);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = { email, password };
      const { data, error, response } = signup
        ? await api.POST("/api/v1/auth/signup", { body })
        : await api.POST("/api/v1/auth/login", { body });
      if (!response.ok || !data) throw toError(response, error);
      session.accept(data);
      route(nextPath(query), true);
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(false);
    }
  }

  const title = signup ? "Create your Stowage account" : "Log in to Stowage";
  return (
    <main class="centered auth">
      <h1>{title}</h1>
      {query.ended && !signup && (
        <p class="notice" role="status">
          Your session ended (it was signed out elsewhere, or expired). Log in again to go on.
        </p>
      )}
      <form onSubmit={submit} aria-describedby={error ? "auth-error" : undefined}>
        <label>
          Email
          <input
            type="email"
            name="email"
            autoComplete="email"
            required
            value={email}
            onInput={(e) => setEmail(e.currentTarget.value)}
          />
        </label>
        <label>
          Password
          <input
            type="password"
            name="password"
            autoComplete={signup ? "new-password" : "current-password"}
            required
            minLength={signup ? 8 : undefined}
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        {signup && <p class="hint">At least 8 characters; a passphrase is best.</p>}
        {error && (
          <p id="auth-error" class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {signup ? "Create account" : "Log in"}
        </button>
      </form>
      <p>
        {signup ? (
          <>
            Have an account? <a href={`/login?next=${encodeURIComponent(nextPath(query))}`}>Log in</a>
          </>
        ) : (
          <>
            New here? <a href={`/signup?next=${encodeURIComponent(nextPath(query))}`}>Create an account</a>
          </>
        )}
      </p>
    </main>
  );
}

export const Login = () => <AuthForm mode="login" />;
export const Signup = () => <AuthForm mode="signup" />;

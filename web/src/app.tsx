// The shell: routes, the signed-in layout (header, navigation, the upload
// tray), and where a signed-out person lands.

import { ErrorBoundary, LocationProvider, Route, Router, useLocation } from "preact-iso";
import { useEffect, useState } from "preact/hooks";
import { session } from "./api/client";
import { Notices, NoticeProvider } from "./components/notices";
import { Header } from "./components/header";
import { Nav } from "./components/nav";
import { UploadTray } from "./components/upload-tray";
import { AppStateProvider } from "./state";
import type { View } from "./pages/drive";
import { Login, Signup } from "./pages/auth";
import { Drive } from "./pages/drive";
import { LinkPage } from "./pages/link";

/** Re-renders on every session change. */
function useSession() {
  const [, tick] = useState(0);
  useEffect(() => session.subscribe(() => tick((n) => n + 1)), []);
  return session;
}

/** Every signed-in page: the layout around the drive, one component for
 * all of them so moving between views keeps the layout (and the uploads). */
function Workspace(props: { view: View; params?: Record<string, string> }) {
  const s = useSession();
  const { route, url } = useLocation();
  useEffect(() => {
    if (!s.signedIn) {
      const params = new URLSearchParams({ next: url });
      if (s.ended === "expired") params.set("ended", "1");
      route(`/login?${params}`, true);
    }
  }, [s.signedIn]);
  if (!s.signedIn) return null;
  return (
    <AppStateProvider>
      <div class="shell">
        <a class="skip" href="#main">
          Skip to the file list
        </a>
        <Header />
        <Nav />
        <main id="main" tabIndex={-1}>
          <Drive view={props.view} folderId={props.params?.id} />
        </main>
        <UploadTray />
      </div>
    </AppStateProvider>
  );
}

function NotFound() {
  return (
    <main class="centered">
      <h1>Nothing here</h1>
      <p>
        This address does not name a page. <a href="/files">Go to your files</a>.
      </p>
    </main>
  );
}

export function App() {
  return (
    <LocationProvider>
      <NoticeProvider>
        <ErrorBoundary>
          <Router>
            <Route path="/login" component={Login} />
            <Route path="/signup" component={Signup} />
            <Route path="/s/:token" component={LinkPage} />
            <Route path="/s/:token/folders/:item" component={LinkPage} />
            <Route path="/" component={Workspace} view="owned" />
            <Route path="/files" component={Workspace} view="owned" />
            <Route path="/folders/:id" component={Workspace} view="owned" />
            <Route path="/shared" component={Workspace} view="shared" />
            <Route path="/shortcuts" component={Workspace} view="shortcuts" />
            <Route path="/trash" component={Workspace} view="trash" />
            <Route path="/search" component={Workspace} view="search" />
            <Route default component={NotFound} />
          </Router>
        </ErrorBoundary>
        <Notices />
      </NoticeProvider>
    </LocationProvider>
  );
}


import { useMemo } from "react";
import { createBrowserRouter, RouterProvider } from "react-router";
import { Provider } from "urql";
import { RequireSession, SignInPage } from "@/features/auth";
import { ConnectButton } from "@/features/connect";
import { Shell } from "@/features/shell";
import { Notice } from "@/components/Notice";
import { createGraphQLClient, createWebSocket } from "@/lib/client";
import { MailPage } from "./MailPage";

const router = createBrowserRouter([
  { path: "/signin", element: <SignInPage /> },
  {
    path: "/",
    element: (
      <RequireSession>
        <Shell tools={<ConnectButton />} />
      </RequireSession>
    ),
    children: [
      { path: "mail/:mailbox/:folder", element: <MailPage /> },
      { path: "mail/:mailbox/:folder/:uid", element: <MailPage /> },
      { path: "all", element: <MailPage allMail /> },
      { path: "all/:mailbox/:folder/:uid", element: <MailPage allMail /> },
    ],
  },
  { path: "*", element: <Notice title="There is no page here." /> },
]);

export function App() {
  const client = useMemo(() => createGraphQLClient(createWebSocket()), []);
  return (
    <Provider value={client}>
      <RouterProvider router={router} />
    </Provider>
  );
}

export { MailList } from "./MailList";

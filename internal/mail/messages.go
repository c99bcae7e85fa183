package mail

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	htmltemplate "html/template"
	"strings"
	"text/template"
)

// Kind names a message template.
type Kind string

// The messages Portal sends.
const (
	// KindVerify asks the owner of an address to confirm it (Link).
	KindVerify Kind = "verify"
	// KindReset carries a password reset link (Link).
	KindReset Kind = "reset"
	// KindInvite invites a new user, made by an admin, to set a password
	// (Link).
	KindInvite Kind = "invite"
	// KindEmailChanged tells the old address that the account's address
	// changed (NewEmail).
	KindEmailChanged Kind = "email_changed"
)

// Data fills a template.
type Data struct {
	// Username is the account's name.
	Username string
	// Link is the single-use link the message carries.
	Link string
	// Valid says for how long the link works, in the message's language
	// (Valid24h, Valid30m).
	Valid string
	// NewEmail is the account's new address (KindEmailChanged).
	NewEmail string
}

// text is one message in one language: a subject, paragraphs, and the
// label of the link's button. Each is a text/template over Data.
type text struct {
	Subject string
	Paras   []string
	Action  string
}

// DefaultLang is the language used when none or an unknown one is asked for.
const DefaultLang = "en"

// messages holds every message in every language: the one place to edit or
// translate them.
var messages = map[string]map[Kind]text{
	"en": {
		KindVerify: {
			Subject: "Confirm your email address for Portal",
			Paras: []string{
				"Hello {{.Username}},",
				"please confirm that this address belongs to your Portal account by opening the link below. It works once, for {{.Valid}}.",
				"If you did not ask for this, ignore this message.",
			},
			Action: "Confirm my address",
		},
		KindReset: {
			Subject: "Reset your Portal password",
			Paras: []string{
				"Hello {{.Username}},",
				"someone (we hope you) asked to reset the password of your Portal account. Open the link below to choose a new one. It works once, for {{.Valid}}; setting a new password signs every session out.",
				"If you did not ask for this, ignore this message: your password stays as it is.",
			},
			Action: "Choose a new password",
		},
		KindInvite: {
			Subject: "You are invited to Portal",
			Paras: []string{
				"Hello {{.Username}},",
				"an administrator made a Portal account for you. Open the link below to choose your password. It works once, for {{.Valid}}.",
			},
			Action: "Choose my password",
		},
		KindEmailChanged: {
			Subject: "The email address of your Portal account changed",
			Paras: []string{
				"Hello {{.Username}},",
				"the email address of your Portal account was changed to {{.NewEmail}}. Mail about the account now goes there.",
				"If you did not do this, sign in and change your password, or ask an administrator for help.",
			},
		},
	},
	"zh-CN": {
		KindVerify: {
			Subject: "确认您的 Portal 邮箱地址",
			Paras: []string{
				"{{.Username}}，您好：",
				"请打开下面的链接，确认此邮箱属于您的 Portal 账号。链接只能使用一次，{{.Valid}}内有效。",
				"如果这不是您本人的操作，请忽略本邮件。",
			},
			Action: "确认邮箱",
		},
		KindReset: {
			Subject: "重置您的 Portal 密码",
			Paras: []string{
				"{{.Username}}，您好：",
				"有人（希望是您本人）请求重置您 Portal 账号的密码。请打开下面的链接设置新密码。链接只能使用一次，{{.Valid}}内有效；设置新密码后所有会话都会退出。",
				"如果这不是您本人的操作，请忽略本邮件，您的密码不会改变。",
			},
			Action: "设置新密码",
		},
		KindInvite: {
			Subject: "邀请您使用 Portal",
			Paras: []string{
				"{{.Username}}，您好：",
				"管理员为您创建了 Portal 账号。请打开下面的链接设置密码。链接只能使用一次，{{.Valid}}内有效。",
			},
			Action: "设置密码",
		},
		KindEmailChanged: {
			Subject: "您的 Portal 账号邮箱已更改",
			Paras: []string{
				"{{.Username}}，您好：",
				"您的 Portal 账号邮箱已改为 {{.NewEmail}}，今后有关账号的邮件将发送到该地址。",
				"如果这不是您本人的操作，请登录并修改密码，或联系管理员。",
			},
		},
	},
}

// Validity texts, per language.
var (
	Valid24h = map[string]string{"en": "24 hours", "zh-CN": "24 小时"}
	Valid30m = map[string]string{"en": "30 minutes", "zh-CN": "30 分钟"}
	Valid7d  = map[string]string{"en": "7 days", "zh-CN": "7 天"}
)

// Lang returns lang when there are messages in it, else DefaultLang.
func Lang(lang string) string {
	if _, ok := messages[lang]; ok {
		return lang
	}
	return DefaultLang
}

var htmlLayout = htmltemplate.Must(htmltemplate.New("mail").Parse(`<!doctype html>
<html><body style="font-family:sans-serif;line-height:1.5">
{{range .Paras}}<p>{{.}}</p>
{{end}}{{if .Link}}<p><a href="{{.Link}}">{{.Action}}</a></p>
<p style="color:#666;font-size:smaller">{{.Link}}</p>
{{end}}</body></html>
`))

// Compose makes the message of kind in lang (DefaultLang when unknown) for
// the address to. Values in d are escaped in the HTML body.
func Compose(kind Kind, lang, to string, d Data) (Message, error) {
	t, ok := messages[Lang(lang)][kind]
	if !ok {
		return Message{}, fmt.Errorf("mail: no message %q", kind)
	}
	fill := func(s string) (string, error) {
		tp, err := template.New("").Option("missingkey=error").Parse(s)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		err = tp.Execute(&b, d)
		return b.String(), err
	}
	subject, err := fill(t.Subject)
	if err != nil {
		return Message{}, err
	}
	paras := make([]string, 0, len(t.Paras))
	for _, p := range t.Paras {
		s, err := fill(p)
		if err != nil {
			return Message{}, err
		}
		paras = append(paras, s)
	}
	text := strings.Join(paras, "\n\n") + "\n"
	if d.Link != "" {
		text += "\n" + d.Link + "\n"
	}
	var html bytes.Buffer
	if err := htmlLayout.Execute(&html, map[string]any{"Paras": paras, "Link": d.Link, "Action": t.Action}); err != nil {
		return Message{}, err
	}
	id, err := NewID()
	if err != nil {
		return Message{}, err
	}
	return Message{ID: id, To: to, Subject: strings.ReplaceAll(subject, "\n", " "), Text: text, HTML: html.String(), Kind: kind}, nil
}

// NewID returns a random message id.
func NewID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

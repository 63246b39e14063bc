;; The forum's load balancer as a Guix System: nginx spreading requests over
;; the forum servers listed in the (forum servers) module.
;;
;; cuedeploy deploys it from examples/forum/mixed with
;;   guix: {config: "../guix/lb.scm", loadPath: ["../guix/modules"],
;;          channels: "../guix/channels.scm"}
;; which amounts to, on the deployer,
;;   guix time-machine -C channels.scm -- system build --save-provenance -L modules lb.scm
;; and, on the host, `guix system reconfigure` of the same files.
(use-modules (gnu)
             (forum servers))
(use-service-modules networking ssh web)

(operating-system
  (host-name "forum-lb")
  (timezone "Etc/UTC")
  (locale "en_US.utf8")

  (bootloader (bootloader-configuration
                (bootloader grub-bootloader)
                (targets '("/dev/sda"))))

  (file-systems (cons (file-system
                        (mount-point "/")
                        (device (file-system-label "forum-lb-root"))
                        (type "ext4"))
                      %base-file-systems))

  (users (cons (user-account
                 (name "ops")
                 (comment "Forum operators")
                 (group "users")
                 (supplementary-groups '("wheel")))
               %base-user-accounts))

  (services
   (append
    (list (service dhcp-client-service-type)
          ;; The deployer logs in as root with a key; add yours with
          ;; openssh-configuration's authorized-keys.
          (service openssh-service-type
                   (openssh-configuration
                     (permit-root-login 'prohibit-password)
                     (password-authentication? #f)))
          (service nginx-service-type
                   (nginx-configuration
                     (upstream-blocks
                      (list (nginx-upstream-configuration
                              (name "forum")
                              (servers %forum-servers))))
                     (server-blocks
                      (list (nginx-server-configuration
                              (listen '("80"))
                              (server-name (list %forum-domain))
                              (locations
                               (list (nginx-location-configuration
                                       (uri "/")
                                       (body '("proxy_pass http://forum;"
                                               "proxy_set_header Host $host;"
                                               "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;")))))))))))
    %base-services)))
